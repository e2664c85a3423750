#!/usr/bin/env bash
# The compose-based integration test (`make compose-test`): brings
# docker-compose.yml up for real, twice: one weftd under mutual TLS with the
# `integration` service's suites, then (profile `replicas`) three replicas on
# PostgreSQL behind nginx with deploy/replicas_test.py. Exits 0 when every
# suite of both passed.
#
#   deploy/compose_test.sh
#
# The Docker engine: the one $DOCKER_HOST (or the default socket) names, if it
# answers. Otherwise, as root, it starts Debian's dockerd for this run, with its
# own data and exec roots under $WEFT_DOCKER_STATE (default
# /var/tmp/weft-docker, kept between runs so images and build layers are
# reused), and stops it at the end. Not root and no engine: it fails saying so.
#
# The base image: `FROM debian:bookworm-slim` is pulled where a registry
# answers; where none does, it is made locally with debootstrap (minbase) and
# imported under that name, so the Dockerfile stays the standard one.
#
# Extra CA certificates: builds behind a TLS-intercepting proxy need its CA
# for npm inside the image. The certificates this host added to its trust
# store (/usr/local/share/ca-certificates/*.crt) are handed to the build as
# the EXTRA_CA_CERTS argument; set WEFT_EXTRA_CA_CERTS to override (empty:
# none).
#
# Containers, networks and volumes of the run are always removed at the end
# (and, in an engine it started, the images later builds replaced).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "compose-test: $*" >&2; }

compose=(docker-compose)
if ! command -v docker-compose >/dev/null 2>&1; then
  if docker compose version >/dev/null 2>&1; then
    compose=(docker compose)
  fi
fi

engine_answers() { timeout 20 docker info >/dev/null 2>&1; }

need_packages() {
  local missing=()
  for p in "$@"; do
    dpkg-query -W -f='${Status}\n' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  if [ "$(id -u)" != 0 ]; then
    say "needs the Debian packages ${missing[*]} (run as root, or install them)"
    exit 2
  fi
  say "installing ${missing[*]}"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

started=
state=${WEFT_DOCKER_STATE:-/var/tmp/weft-docker}
project=${WEFT_COMPOSE_PROJECT:-weftci}

cleanup() {
  local rc=$?
  if [ -n "${compose_up:-}" ]; then
    say "removing the run's containers, networks and volumes"
    "${compose[@]}" -p "$project" --profile replicas --profile replicas-test \
      down -t 0 -v --remove-orphans \
      >/dev/null 2>&1 || true
  fi
  if [ -n "$started" ]; then
    # Its own engine's state is kept for the next run's layers; images an
    # earlier run built and this one replaced are dropped, so it does not grow.
    docker image prune -f >/dev/null 2>&1 || true
    say "stopping the dockerd it started"
    kill "$started" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$started" 2>/dev/null || break; sleep 0.1; done
  fi
  exit $rc
}
trap cleanup EXIT

if ! command -v docker >/dev/null 2>&1 || ! engine_answers; then
  if [ "$(id -u)" != 0 ]; then
    say "no Docker engine answers (DOCKER_HOST=${DOCKER_HOST:-unset}) and it is not"
    say "root, so it cannot start one: start dockerd, or run it as root"
    exit 2
  fi
  need_packages docker.io docker-compose
  compose=(docker-compose)
  export DOCKER_HOST=unix://$state/docker.sock
  if ! engine_answers; then
    mkdir -p "$state"
    say "starting dockerd (data in $state, log in $state/dockerd.log)"
    dockerd --data-root "$state/root" --exec-root "$state/exec" -H "$DOCKER_HOST" \
      --pidfile "$state/dockerd.pid" >"$state/dockerd.log" 2>&1 &
    started=$!
    for _ in $(seq 120); do engine_answers && break; sleep 0.5; done
    engine_answers || { say "dockerd did not answer within 60 s:"; tail -20 "$state/dockerd.log" >&2; exit 2; }
  fi
fi
command -v "${compose[0]}" >/dev/null || need_packages docker-compose

if ! docker image inspect debian:bookworm-slim >/dev/null 2>&1 &&
   ! timeout 120 docker pull -q debian:bookworm-slim >/dev/null 2>&1; then
  [ "$(id -u)" = 0 ] || { say "debian:bookworm-slim cannot be pulled, and making it needs root"; exit 2; }
  need_packages debootstrap
  rootfs=$(mktemp -d "${TMPDIR:-/tmp}/weft-rootfs.XXXXXX")
  say "no registry answers: making debian:bookworm-slim with debootstrap"
  debootstrap --variant=minbase bookworm "$rootfs" >/dev/null
  rm -rf "$rootfs/var/lib/apt/lists/"*
  tar -C "$rootfs" -c . | docker import - debian:bookworm-slim >/dev/null
  rm -rf "$rootfs"
fi

if [ -z "${WEFT_EXTRA_CA_CERTS+set}" ]; then
  WEFT_EXTRA_CA_CERTS=$(cat /usr/local/share/ca-certificates/*.crt 2>/dev/null || true)
fi
export WEFT_EXTRA_CA_CERTS
# The host port weftd is published on: any free one, so a weftd already
# listening on 50051 here does not stop the run.
export WEFT_PUBLISH=${WEFT_PUBLISH:-127.0.0.1::}
export WEFT_BALANCER_PUBLISH=${WEFT_BALANCER_PUBLISH:-127.0.0.1::}

# The replicas' suite kills a replica through the engine's socket.
case "${DOCKER_HOST:-unix:///var/run/docker.sock}" in
  unix://*) export WEFT_DOCKER_SOCKET=${DOCKER_HOST:-unix:///var/run/docker.sock}
            WEFT_DOCKER_SOCKET=${WEFT_DOCKER_SOCKET#unix://} ;;
  *) WEFT_DOCKER_SOCKET= ;;
esac
if [ ! -S "$WEFT_DOCKER_SOCKET" ]; then
  say "the replicas' suite mounts the Docker engine's unix socket to kill a replica,"
  say "and DOCKER_HOST=${DOCKER_HOST:-unset} names none here: use a local engine"
  exit 2
fi

# 1. One weftd under mutual TLS: the GoogleTest, Python, Node and metrics
# suites.
start=$(date +%s)
compose_up=1
set +e
"${compose[@]}" -p "$project" up --build --abort-on-container-exit --exit-code-from integration \
  weftd upstream integration
single=$?
set -e
say "the integration service exited $single after $(($(date +%s) - start)) s"
"${compose[@]}" -p "$project" down -t 0 -v --remove-orphans >/dev/null 2>&1 || true

# 2. Three replicas on PostgreSQL behind nginx (profile `replicas`). Not `up
# --abort-on-container-exit`: the suite kills a replica, which would end the
# run.
start=$(date +%s)
set +e
"${compose[@]}" -p "$project" --profile replicas build postgres balancer &&
  "${compose[@]}" -p "$project" --profile replicas --profile replicas-test \
    run --rm replicas-integration
replicas=$?
set -e
say "the replicas-integration service exited $replicas after $(($(date +%s) - start)) s"
if [ "$replicas" != 0 ]; then
  "${compose[@]}" -p "$project" --profile replicas logs --no-color --tail=150 \
    postgres weftd-1 weftd-2 weftd-3 balancer >&2 || true
fi
[ "$single" = 0 ] && [ "$replicas" = 0 ]
