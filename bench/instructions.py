#!/usr/bin/python3
"""Instructions weftd spends per request, counted by callgrind: repeatable
whatever else the machine is doing, so two builds can be compared exactly
where a load test on a shared machine cannot.

    bench/instructions.py build/server/weftd/weftd [OTHER_WEFTD]

For each scenario, weftd runs under `valgrind --tool=callgrind` twice: with
no requests and with --requests of them (after 20 to warm up); the
difference divided by --requests is the cost of one request, weftd's side
only (gRPC's included). With two binaries, prints their ratio. Uses Debian's
python3-grpcio and messages generated from proto/ with protoc.
"""

import argparse
import importlib
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
VALUE = {"call": {"handler": "value", "args": {"value": 1}}}
SCENARIOS = [
    ("Run: one value call", VALUE, "OUTCOME_DETAIL_UNSPECIFIED"),
    ("Run: parallel of 100 value calls, root only", {"parallel": {"children": [VALUE] * 100}},
     "OUTCOME_DETAIL_ROOT"),
    ("Run: parallel of 100 value calls, full", {"parallel": {"children": [VALUE] * 100}},
     "OUTCOME_DETAIL_UNSPECIFIED"),
]


def instructions(binary, requests, plan, detail, pb, grpc):
    with tempfile.NamedTemporaryFile(suffix=".callgrind", delete=False) as f:
        out = f.name
    proc = subprocess.Popen(["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
                             binary, "--listen=127.0.0.1:0", "--malloc_tuning=false"],
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        address = re.search(r"listening on (\S+)", proc.stdout.readline()).group(1)
        channel = grpc.insecure_channel(address)
        run = channel.unary_unary("/weft.v1.Orchestrator/Run",
                                  request_serializer=lambda m: m.SerializeToString(),
                                  response_deserializer=pb.orchestrator.RunResponse.FromString)
        request = pb.orchestrator.RunRequest(
            plan=pb.json_format.ParseDict(plan, pb.plan.PlanNode()),
            detail=pb.orchestrator.OutcomeDetail.Value(detail))
        for _ in range(20 + requests):
            run(request, timeout=120)
        channel.close()
    finally:
        proc.terminate()
        proc.wait()
    total = None
    with open(out) as f:
        for line in f:
            if line.startswith(("summary:", "totals:")):
                total = int(line.split()[1])
    os.unlink(out)
    return total


def main():
    p = argparse.ArgumentParser()
    p.add_argument("weftd", nargs="+", help="one weftd, or two to compare")
    p.add_argument("--requests", type=int, default=500)
    args = p.parse_args()
    import grpc
    with tempfile.TemporaryDirectory() as gen:
        protos = sorted("weft/v1/" + f for f in os.listdir(os.path.join(HERE, "..", "proto/weft/v1")))
        subprocess.run(["protoc", "--python_out=" + gen, "-I", os.path.join(HERE, "..", "proto"),
                        *protos], check=True)
        sys.path.insert(0, gen)

        class pb:
            plan = importlib.import_module("weft.v1.plan_pb2")
            orchestrator = importlib.import_module("weft.v1.orchestrator_pb2")
            json_format = importlib.import_module("google.protobuf.json_format")

        for name, plan, detail in SCENARIOS:
            costs = []
            for binary in args.weftd:
                idle = instructions(binary, 0, plan, detail, pb, grpc)
                busy = instructions(binary, args.requests, plan, detail, pb, grpc)
                costs.append((busy - idle) / args.requests)
            line = "%-45s %s" % (name, "  ".join("%10.0f" % c for c in costs))
            if len(costs) == 2:
                line += "   ratio %.3f" % (costs[1] / costs[0])
            print(line, flush=True)


if __name__ == "__main__":
    main()
