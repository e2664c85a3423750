#!/usr/bin/env bash
# The compose integration service's command (the Dockerfile's test stage):
# the GoogleTest integration suite, then the Python and Node clients' tests,
# against weftd at $WEFT_ADDR, whose http handler may call the fixture at
# $WEFT_UPSTREAM. Every suite runs; the exit code is 0 only if all passed.
set -uo pipefail
cd "$(dirname "$0")/.."
: "${WEFT_ADDR:?set WEFT_ADDR to weftd, host:port}"
: "${WEFT_UPSTREAM:?set WEFT_UPSTREAM to the HTTP fixture, host:port}"

failed=()
suite() {
  local name=$1; shift
  echo "=== $name: $*"
  if "$@"; then echo "=== $name: passed"; else echo "=== $name: FAILED"; failed+=("$name"); fi
}

suite integration integration_test
suite python env PYTHONPATH=clients/python/gen:clients/python \
  python3 -m pytest -q -p no:cacheprovider clients/python/tests
suite node bash -c 'cd clients/node && node --test test/'
# Last: the suites above moved the counters a scrape should find.
if [ -n "${WEFT_METRICS:-}" ]; then
  suite metrics python3 deploy/check_metrics.py "$WEFT_METRICS"
fi

if [ ${#failed[@]} -gt 0 ]; then
  echo "=== failed: ${failed[*]}"
  exit 1
fi
echo "=== every suite passed"
