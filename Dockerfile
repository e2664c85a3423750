# weft in containers. Six stages:
#   certs    openssl and deploy/make_certs.sh: the compose file's one-shot
#            service making a test CA and certificates (mutual TLS)
#   postgres PostgreSQL 15, the database of the compose file's replicas
#   balancer nginx, the gRPC load balancer in front of the replicas
#   build    Debian's -dev packages; builds weftd, weft, the HTTP fixture, the
#            integration suite and the Python client's stubs
#   runtime  (the default) runtime libraries, weftd, weft and the fixture, as
#            a non-root user: the image to deploy
#   test     runtime + what the compose integration service runs: the
#            GoogleTest suite, Python (python3-grpcio, pytest) and Node with
#            the clients
#
#   docker build -t weft .                 # the runtime image
#   docker run -p 50051:50051 weft         # weftd on 0.0.0.0:50051
#   docker-compose up --build --abort-on-container-exit --exit-code-from integration
#
# weftd takes its settings from WEFT_* variables (WEFT_HTTP_ALLOW,
# WEFT_POOLS, ...) and from a config file named by WEFT_CONFIG; see
# docs/operations.md. Only the classic builder's features are used, so
# docker-compose 1.29 builds it as it is.

# First, so that building it builds nothing else.
FROM debian:bookworm-slim AS certs
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openssl \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/make_certs.sh /usr/local/bin/
ENTRYPOINT ["make_certs.sh"]

# The replicas' database (compose's `postgres`): Debian's PostgreSQL 15,
# since no image registry need answer; deploy/compose/postgres.sh makes the
# cluster on first start.
FROM debian:bookworm-slim AS postgres
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo "create_main_cluster = false" >/etc/postgresql-common/createcluster.d/weft.conf \
 && apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      postgresql-15 \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /var/lib/postgresql/data && chown postgres:postgres /var/lib/postgresql/data
COPY deploy/compose/postgres.sh /usr/local/bin/
USER postgres
ENV PGDATA=/var/lib/postgresql/data
VOLUME /var/lib/postgresql/data
EXPOSE 5432
STOPSIGNAL SIGINT
ENTRYPOINT ["postgres.sh"]

# The replicas' gRPC load balancer (compose's `balancer`): Debian's nginx 1.22
# with grpc_pass; deploy/compose/nginx.conf is its configuration.
FROM debian:bookworm-slim AS balancer
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nginx \
 && rm -rf /var/lib/apt/lists/*
COPY deploy/compose/nginx.conf /etc/nginx/weft.conf
EXPOSE 50051
ENTRYPOINT ["nginx", "-c", "/etc/nginx/weft.conf", "-g", "daemon off;"]

FROM debian:bookworm-slim AS build
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      g++ make cmake ninja-build pkg-config python3 \
      libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler \
      libabsl-dev grpc-proto libgtest-dev libgmock-dev libssl-dev \
      libcurl4-openssl-dev libsqlite3-dev golang-github-gogo-googleapis-dev \
      libcpp-httplib-dev libpq-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# What the build reads, and nothing else, so an edit to the docs or the
# clients' tests does not rebuild the C++.
COPY CMakeLists.txt ./
COPY proto proto
COPY server server
COPY client client
COPY examples examples
COPY tests tests
COPY clients/python/CMakeLists.txt clients/python/generate.sh clients/python/
COPY clients/node/CMakeLists.txt clients/node/
COPY clients/CMakeLists.txt clients/
# -O2, as the tested builds (GCC 12's -O3 also warns falsely in std::string).
RUN cmake -S . -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DCMAKE_CXX_FLAGS_RELEASE="-O2 -DNDEBUG" -DWEFT_BUILD_BENCH=OFF \
 && cmake --build /build --target weftd weft http_fixture integration_test \
      weft_python_stubs \
 && strip /build/server/weftd/weftd /build/client/weft \
      /build/tests/fixture/http_fixture /build/tests/integration/integration_test

FROM debian:bookworm-slim AS runtime
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      libgrpc++1.51 libprotobuf32 libabsl20220623 libcurl4 libsqlite3-0 \
      libcpp-httplib0.11 libpq5 ca-certificates \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 10001 --user-group --no-create-home --home-dir /var/lib/weft \
      --shell /usr/sbin/nologin weft \
 && mkdir -p /var/lib/weft /etc/weft && chown weft:weft /var/lib/weft
COPY --from=build /build/server/weftd/weftd /build/client/weft \
     /build/tests/fixture/http_fixture /usr/local/bin/
USER weft
WORKDIR /var/lib/weft
# The task store: accepted tasks survive a restart of the container.
VOLUME /var/lib/weft
EXPOSE 50051
ENV WEFT_LISTEN=0.0.0.0:50051 WEFT_STORE=sqlite:/var/lib/weft/weft.db
# The health check is the weft CLI. Under TLS it needs the CA (and under mutual
# TLS, --tls_client_ca, a client certificate of its own): set
# WEFT_CLIENT_TLS_CA, WEFT_CLIENT_TLS_CERT and WEFT_CLIENT_TLS_KEY in the
# container's environment. weft never reads weftd's own WEFT_TLS_* variables.
HEALTHCHECK --interval=2s --timeout=5s --start-period=10s --retries=30 \
  CMD ["weft", "--addr=127.0.0.1:50051", "--timeout=4s", "health"]
ENTRYPOINT ["weftd"]

FROM runtime AS test
USER root
# Builds behind a TLS-intercepting proxy: its CA certificates (PEM), trusted
# by apt and npm here. deploy/compose_test.sh passes the host's own additions.
ARG EXTRA_CA_CERTS=""
RUN apt-get update -qq \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
      python3 python3-grpcio python3-protobuf python3-pytest nodejs npm postgresql-client \
      grpc-proto golang-github-gogo-googleapis-dev \
 && rm -rf /var/lib/apt/lists/* \
 && if [ -n "$EXTRA_CA_CERTS" ]; then \
      printf '%s\n' "$EXTRA_CA_CERTS" | awk '/BEGIN CERTIFICATE/ { n++ } \
        { print > ("/usr/local/share/ca-certificates/extra-" n+0 ".crt") }' \
      && update-ca-certificates >/dev/null; \
    fi
WORKDIR /opt/weft
COPY clients/node/package.json clients/node/package-lock.json clients/node/
RUN cd clients/node \
 && NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt \
    npm ci --omit=dev --no-audit --no-fund --loglevel=error
COPY proto proto
COPY clients clients
COPY deploy/integration.sh deploy/check_metrics.py deploy/replicas_test.py deploy/
COPY --from=build /build/tests/integration/integration_test /usr/local/bin/
COPY --from=build /build/clients/python/gen clients/python/gen
USER weft
ENTRYPOINT []
CMD ["deploy/integration.sh"]
