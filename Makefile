# weft: the two commands are `make run` and `make test` (see README.md).
#
#   make run     install missing packages, build, start weftd on 127.0.0.1:50051
#   make test    install missing packages and tools, build, run every test
#                (buf lint and breaking, the compose file's syntax, unit, service,
#                smoke, README tour, integration, the Python and Node clients, then
#                the engine and reactor tests under ThreadSanitizer and everything
#                under AddressSanitizer + UndefinedBehaviorSanitizer)
#   make compose-test  bring docker-compose.yml up for real (weftd, the HTTP
#                fixture, the integration suites); starts a Docker engine if none
#                answers (as root)
#   make check   build and run the tests once, without the sanitizer builds
#   make bench   build and run the benchmarks
#   make fuzz    fuzz each libFuzzer target for FUZZ_SECONDS (default 60)
#   make fixture start the HTTP fixture on 127.0.0.1:8080 (README tour)
#   make format  clang-format every source file

SHELL := /bin/bash
.DEFAULT_GOAL := help

BUILD     ?= build
BUILD_TYPE ?= RelWithDebInfo
JOBS      ?= $(shell nproc)
WEFTD_FLAGS ?= --config=config/weftd.json --listen=127.0.0.1:50051 \
  --store=sqlite:$(BUILD)/weft.db
# Warnings are errors in CI (CI=true) and wherever WERROR=ON is set.
WERROR    ?= $(if $(filter true,$(CI)),ON,OFF)

BUF := $(CURDIR)/.tools/node_modules/.bin/buf

# ccache: paths relative to the checkout, and the build folder left out of
# the hash, so that two checkouts in different folders (a clean clone in CI,
# a developer's tree) share what is cached.
export CCACHE_BASEDIR ?= $(CURDIR)
export CCACHE_NOHASHDIR ?= true

# Debian 12 packages: what the build needs, and what only the tests need
# (clang for the sanitizer builds, python3 for the end-to-end tests).
APT_BUILD := build-essential cmake ninja-build ccache pkg-config git \
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
  libabsl-dev grpc-proto libgtest-dev libgmock-dev googletest libbenchmark-dev \
  libssl-dev libcurl4-openssl-dev libsqlite3-dev golang-github-gogo-googleapis-dev \
  libcpp-httplib-dev libpq-dev
APT_TEST := python3 procps util-linux clang libclang-rt-14-dev clang-format \
  python3-grpcio python3-protobuf python3-pytest llvm docker-compose openssl \
  postgresql

CMAKE_FLAGS := -G Ninja -DCMAKE_BUILD_TYPE=$(BUILD_TYPE) -DWEFT_WERROR=$(WERROR)

.PHONY: help deps deps-test tools configure build run fixture test check sanitizers tsan asan \
        lint compose-config compose-test api-snapshot bench fuzz format format-check clean

help:
	@sed -n '3,16p' Makefile | sed 's/^# \{0,1\}//'

# Installs the missing Debian packages (as root, or through sudo).
define apt_install
	@missing=$$(for p in $(1); do \
	    dpkg-query -W -f='$${Status}\n' $$p 2>/dev/null | grep -q "ok installed" || echo $$p; \
	  done); \
	if [ -n "$$missing" ]; then \
	  echo "Installing:" $$missing; \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && \
	  DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

deps:
	$(call apt_install,$(APT_BUILD))

deps-test: deps
	$(call apt_install,$(APT_TEST))

# buf (lint, and `buf curl` for the smoke and README tests) from npm.
tools: deps-test
	@command -v npm >/dev/null || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq npm; }
	@[ -x $(BUF) ] || npm install --prefix .tools --no-audit --no-fund --silent @bufbuild/buf@1
	@$(BUF) --version >/dev/null
	@# The Node client's modules, as its package-lock.json pins them.
	@cmp -s clients/node/package-lock.json clients/node/node_modules/.weft-lock || \
	  (cd clients/node && npm ci --no-audit --no-fund --silent && \
	   cp package-lock.json node_modules/.weft-lock)

$(BUILD)/build.ninja:
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)

configure: deps $(BUILD)/build.ninja

build: configure
	cmake --build $(BUILD) -j $(JOBS)

run: build
	$(BUILD)/server/weftd/weftd $(WEFTD_FLAGS)

# The HTTP server the tests use, where config/weftd.json allows http calls.
fixture: build
	$(BUILD)/tests/fixture/http_fixture --listen=127.0.0.1:8080

lint: tools
	$(BUF) lint
	$(BUF) breaking --against proto/weft-v1.binpb

# Records the API as it stands, the base `buf breaking` checks against: run it
# when a change to weft.v1 lands (changes must stay additive).
api-snapshot: tools
	$(BUF) build -o proto/weft-v1.binpb

# The compose file as docker-compose reads it (no engine needed).
compose-config: deps-test
	docker-compose -f docker-compose.yml config -q

# The compose-based integration test (deploy/compose_test.sh says how).
compose-test:
	bash deploy/compose_test.sh

check: tools build lint format-check compose-config
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS) --timeout 600

# Under TSan: the tests of the layers below the service (no gRPC inside) and
# the tests of the service's reactors (label "reactors": Run, CreateTask,
# WaitTask, WatchTask, health Watch), with the orderings gRPC's uninstrumented
# core provides marked in server/service/reactor.h and gRPC's own bookkeeping
# named in tests/tsan.supp. Under ASan: every test
# under ASan+UBSan except the README tour and the lazy end-to-end test, which
# start hundreds of CLI processes (slow under ASan) and add no C++ paths that
# the other end-to-end tests do not already run there, and the hostile suite,
# which runs weftd under an address-space cap that ASan's shadow memory
# cannot live in (its paths run under ASan in the service and plan tests). Debian's gRPC,
# protobuf and Abseil are not instrumented, which ASan tolerates and TSan only
# with help, hence the split. Both sanitizer builds use clang: GCC 12's TSan
# crashes inside protobuf's Map, clang's does not; clang checks the
# thread-safety annotations; and with sanitizers clang compiles this code
# about twice as fast as GCC (the ASan build was the longest part of CI).
# The ASan build keeps line tables only (-g1): reports keep file:line and
# the build is lighter. The TSan build keeps full debug info: its Status
# suppression (tests/tsan.supp) matches the qualified names of inlined frames,
# which line tables alone do not carry.
tsan: deps-test
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)-tsan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DWEFT_SANITIZER=thread -DWEFT_BUILD_BENCH=OFF -DWEFT_WERROR=$(WERROR)
	cmake --build $(BUILD)-tsan -j $(JOBS) --target weft_core_tests weft_reactor_tests
	cd $(BUILD)-tsan && TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1 ignore_noninstrumented_modules=1 suppressions=$(CURDIR)/tests/tsan.supp" \
	  ctest --output-on-failure -j $(JOBS) -L '^(engine|common|auth|handlers|plan|store|tasks|lazy|reactors)$$' --timeout 900 \
	  -E '^TaskMethodsTest.WaitAnswersWhenItsTimeoutPassesAndWithinTheCallersDeadline$$'
# (That test checks a timing margin, WaitTask answering 50 ms before a 0.5 s
# deadline, which TSan's slowdown can eat; it runs in the other builds.)

asan: tools
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)-asan -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DWEFT_SANITIZER=address -DWEFT_BUILD_BENCH=OFF -DWEFT_WERROR=$(WERROR) -DWEFT_FUZZ=ON
	cmake --build $(BUILD)-asan -j $(JOBS)
	cd $(BUILD)-asan && ASAN_OPTIONS="detect_leaks=1" \
	  LSAN_OPTIONS="suppressions=$(CURDIR)/tests/lsan.supp" \
	  UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" \
	  ctest --output-on-failure -j $(JOBS) --timeout 900 -E '^(readme_tour|lazy_e2e|hostile)$$'

sanitizers: tsan asan

# libFuzzer (clang 14): every target fuzzed for FUZZ_SECONDS (default 60)
# each, in a build instrumented throughout for coverage, starting from the
# corpus in fuzz/corpus (new inputs go to $(BUILD)-fuzz/corpus; crashes to
# $(BUILD)-fuzz/artifacts, and each one found becomes a corpus entry and a
# regression test). CI instead replays the corpus and runs a fixed number
# of inputs from a fixed seed, in the AddressSanitizer build (label fuzz).
FUZZ_SECONDS ?= 60
FUZZ_TARGETS := plan_request json_request config small_parsers
fuzz: deps-test
	CC=clang CXX=clang++ cmake -S . -B $(BUILD)-fuzz -G Ninja -DCMAKE_BUILD_TYPE=Debug \
	  -DWEFT_SANITIZER=address -DWEFT_FUZZ=ON -DWEFT_FUZZ_COVERAGE=ON \
	  -DWEFT_BUILD_TESTS=OFF -DWEFT_BUILD_BENCH=OFF
	cmake --build $(BUILD)-fuzz -j $(JOBS) --target $(FUZZ_TARGETS:%=%_fuzz)
	@mkdir -p $(BUILD)-fuzz/artifacts
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p $(BUILD)-fuzz/corpus/$$t; \
	  echo "=== $$t: $(FUZZ_SECONDS)s"; \
	  $(BUILD)-fuzz/fuzz/$${t}_fuzz -max_total_time=$(FUZZ_SECONDS) -max_len=4096 \
	    -rss_limit_mb=4096 -print_final_stats=1 \
	    -artifact_prefix=$(BUILD)-fuzz/artifacts/$${t}- \
	    $(BUILD)-fuzz/corpus/$$t fuzz/corpus/$$t || exit 1; \
	done

test: check sanitizers

bench: build deps-test
	python3 bench/bench.py --build=$(BUILD)

SOURCES = $(shell find server client tests bench examples fuzz -name '*.h' -o -name '*.cc')

format:
	clang-format -i $(SOURCES)

format-check: deps-test
	clang-format --dry-run -Werror $(SOURCES)

clean:
	rm -rf $(BUILD) $(BUILD)-tsan $(BUILD)-asan
