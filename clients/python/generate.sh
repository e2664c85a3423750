#!/bin/sh
# Generates the Python modules of weft's API into OUT_DIR, with Debian's protoc
# and grpc_python_plugin (Debian's python3-grpc-tools, 1.14, predates proto3
# `optional` and cannot compile config.proto). The one definition of the
# generation: CMake's weft_python_stubs target runs this script too.
#
#   clients/python/generate.sh OUT_DIR
#
# OUT_DIR then holds, for python3-protobuf and python3-grpcio:
#   weft/v1/*_pb2.py, weft/v1/orchestrator_pb2_grpc.py   weft.v1 (proto/)
#   google/rpc/{status,error_details,code}_pb2.py         the error details
#   grpc_health/v1/health_pb2.py, health_pb2_grpc.py      grpc.health.v1
#
# `google` and `weft` get no __init__.py: they stay namespace packages, so
# google.rpc sits beside Debian's google.protobuf instead of hiding it. The
# health protocol goes under grpc_health/ (its PyPI layout, and the file name
# its descriptor is registered under), since a grpc/ directory would be
# hidden by grpcio's own `grpc` package.
#
# Environment (defaults are Debian 12's paths): PROTOC, GRPC_PYTHON_PLUGIN,
# WEFT_PROTO_DIR (proto/ of this repository), WEFT_GOOGLEAPIS_DIR (holding
# google/rpc/*.proto), WEFT_GRPC_PROTO_DIR (holding grpc/health/v1/health.proto).
# protoc finds the well-known types (google/protobuf/*.proto) itself.
set -eu

if [ $# -ne 1 ]; then
  echo "usage: $0 OUT_DIR" >&2
  exit 2
fi
out=$1
here=$(cd "$(dirname "$0")" && pwd)
protoc=${PROTOC:-protoc}
plugin=${GRPC_PYTHON_PLUGIN:-$(command -v grpc_python_plugin || echo grpc_python_plugin)}
proto_dir=$(cd "${WEFT_PROTO_DIR:-$here/../../proto}" && pwd)
googleapis=${WEFT_GOOGLEAPIS_DIR:-/usr/share/gocode/src/github.com/gogo/googleapis}
grpc_proto=${WEFT_GRPC_PROTO_DIR:-/usr/share/grpc-proto}

# What an earlier generation left (a proto since removed), then the new.
rm -rf "$out/weft/v1" "$out/google/rpc" "$out/grpc_health/v1"
mkdir -p "$out"
set -- -I "$proto_dir" -I "$googleapis" -I "grpc_health/v1=$grpc_proto/grpc/health/v1"

weft_protos=$(cd "$proto_dir" && echo weft/v1/*.proto)
# shellcheck disable=SC2086 # the list of proto files, without spaces
"$protoc" "$@" --python_out="$out" --pyi_out="$out" $weft_protos \
  google/rpc/status.proto google/rpc/error_details.proto google/rpc/code.proto \
  grpc_health/v1/health.proto
"$protoc" "$@" --plugin=protoc-gen-grpc_python="$plugin" --grpc_python_out="$out" \
  weft/v1/orchestrator.proto grpc_health/v1/health.proto
