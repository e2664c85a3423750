#!/usr/bin/env python3
"""A Python peer for `make bench`: weft.v1.Orchestrator/Run served by a
grpc.aio server, a parallel's fan-out done with asyncio.TaskGroup.

It is what a Python service doing weft's job for the benchmark's plans looks
like, so `make bench` can measure it with the same load generator, the same
request bytes and the same calls in flight as weftd and the echo server:

  * the same method and messages: RunRequest in, RunResponse out, from
    weft's own proto/ (compiled at start with grpc_tools if it is installed,
    else with protoc, the way tests/hostile/hostile_test.py makes its
    clients' messages);
  * the plans the benchmark sends: a `call` of the `value` handler (its
    `value` argument is its value), and a `parallel` (JOIN_ALL) of such
    nodes, nested to any depth. The plan is checked before it runs (a known
    handler, a `value` argument, nothing else), as weft compiles it first;
  * a parallel of N children runs N coroutines in one asyncio.TaskGroup,
    each returning its value; a handler that raises fails the run and the
    TaskGroup cancels its siblings;
  * the outcome has the shape weftd returns: kind, state, start and end
    times and attempts on every node, `join` on a parallel; with
    OUTCOME_DETAIL_ROOT the root alone with its value built (a list in child
    order, or an object by id when every child has one), otherwise every
    node with the values on the call nodes (`--check` compares the two
    servers' outcomes).

One process, one event loop, Debian's python3-grpcio and python3-protobuf
(the C++ protobuf backend), no uvloop: a plain grpc.aio service.

  python3 bench/python_peer.py --listen=127.0.0.1:0    # prints "listening on ..."
  python3 bench/python_peer.py --check WEFT_ADDR PEER_ADDR
      # sends bench.py's peer scenarios to both and compares the outcomes,
      # start and end times aside; exits 1 if they differ
"""

import argparse
import asyncio
import importlib
import importlib.resources
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..")

try:
    import grpc
    import grpc.aio
except ImportError:
    sys.exit("python_peer: needs python3-grpcio and python3-protobuf "
             "(apt-get install python3-grpcio python3-protobuf)")

pb = None  # The generated modules, set up by generate().


class Modules:
    pass


def generate(proto_dir, out):
    """--python_out for weft's API, with grpc_tools when it is installed
    (its protoc and well-known types), else with the system's protoc."""
    protos = [os.path.join("weft/v1", p)
              for p in sorted(os.listdir(os.path.join(proto_dir, "weft/v1")))
              if p.endswith(".proto")]
    try:
        from grpc_tools import protoc as grpc_protoc
        wkt = str(importlib.resources.files("grpc_tools") / "_proto")
        if grpc_protoc.main(["protoc", "--python_out=" + out, "-I", proto_dir, "-I", wkt,
                             *protos]) != 0:
            raise RuntimeError("grpc_tools.protoc failed")
    except ImportError:
        if shutil.which("protoc") is None:
            sys.exit("python_peer: needs grpc_tools or protoc (apt-get install protobuf-compiler)")
        subprocess.run(["protoc", "--python_out=" + out, "-I", proto_dir, *protos], check=True)
    sys.path.insert(0, out)
    m = Modules()
    for name in ("plan", "outcome", "orchestrator"):
        setattr(m, name, importlib.import_module("weft.v1.%s_pb2" % name))
    m.json_format = importlib.import_module("google.protobuf.json_format")
    return m


# The handlers a plan can call: coroutines from the call's args (a
# google.protobuf.Struct) to its value (a google.protobuf.Value).
async def value_handler(args):
    return args.fields["value"]


HANDLERS = {"value": value_handler}


def check(plan):
    """What weft's compiler would refuse, for the plans this peer runs;
    raises ValueError naming the field, from the plan down."""
    kind = plan.WhichOneof("kind")
    if kind == "call":
        if plan.call.handler not in HANDLERS:
            raise ValueError(".call.handler: unknown handler %r" % plan.call.handler)
        if "value" not in plan.call.args.fields:
            raise ValueError(".call.args: `value` is required")
    elif kind == "parallel":
        parallel = plan.parallel
        if parallel.join not in (pb.plan.JOIN_UNSPECIFIED, pb.plan.JOIN_ALL):
            raise ValueError(".parallel.join: only JOIN_ALL here")
        if parallel.max_concurrency or parallel.quorum:
            raise ValueError(".parallel: no max_concurrency or quorum here")
        for i, child in enumerate(parallel.children):
            try:
                check(child)
            except ValueError as e:
                raise ValueError(".parallel.children[%d]%s" % (i, e)) from None
    else:
        raise ValueError(": the Python peer runs `call` and `parallel` nodes only, not %s"
                         % kind)
    if plan.HasField("retry") or plan.HasField("timeout"):
        raise ValueError(": no retry or timeout here")


class Node:
    """A node that ran: what the outcome is built from."""
    __slots__ = ("plan", "start", "end", "value", "children")

    def __init__(self, plan, start):
        self.plan = plan
        self.start = start
        self.end = 0
        self.value = None
        self.children = ()


async def run_node(plan):
    node = Node(plan, time.time_ns())
    if plan.HasField("call"):
        node.value = await HANDLERS[plan.call.handler](plan.call.args)
    else:
        # JOIN_ALL: every child must succeed; the first to fail cancels the
        # rest (the TaskGroup does) and fails the parallel.
        async with asyncio.TaskGroup() as tg:
            tasks = [tg.create_task(run_node(child)) for child in plan.parallel.children]
        node.children = [t.result() for t in tasks]
    node.end = time.time_ns()
    return node


def build_value(node, out):
    """A node's value into `out` (a google.protobuf.Value), built from its
    children's for a parallel as weft builds it."""
    if node.value is not None:
        out.CopyFrom(node.value)
    elif node.children and all(c.plan.id for c in node.children):
        fields = out.struct_value.fields
        for c in node.children:
            build_value(c, fields[c.plan.id])
    else:
        values = out.list_value.values
        for c in node.children:
            build_value(c, values.add())


def build_outcome(node, out, root_only):
    if node.plan.id:
        out.id = node.plan.id
    call = node.value is not None
    out.kind = pb.outcome.NODE_KIND_CALL if call else pb.outcome.NODE_KIND_PARALLEL
    out.state = pb.outcome.NODE_STATE_SUCCEEDED
    out.start_time.FromNanoseconds(node.start)
    out.end_time.FromNanoseconds(node.end)
    out.attempts = 1
    if not call:
        out.join = pb.plan.JOIN_ALL
    if root_only:
        build_value(node, out.value)
        return
    if call:
        out.value.CopyFrom(node.value)
    for c in node.children:
        build_outcome(c, out.children.add(), False)


async def run(request, context):
    """weft.v1.Orchestrator/Run."""
    try:
        check(request.plan)
    except ValueError as e:
        await context.abort(grpc.StatusCode.INVALID_ARGUMENT, "plan%s" % e)
    start = time.time_ns()
    response = pb.orchestrator.RunResponse()
    try:
        root = await run_node(request.plan)
    except Exception as e:  # noqa: BLE001: any handler's failure fails the run.
        # A handler raised (the benchmark's plans never do); from inside a
        # TaskGroup it comes as an ExceptionGroup.
        while isinstance(e, BaseExceptionGroup):
            e = e.exceptions[0]
        out = response.outcome
        out.kind = (pb.outcome.NODE_KIND_CALL if request.plan.HasField("call")
                    else pb.outcome.NODE_KIND_PARALLEL)
        out.state = pb.outcome.NODE_STATE_FAILED
        out.error.code = "UNKNOWN"
        out.error.message = str(e)
        out.start_time.FromNanoseconds(start)
        out.end_time.FromNanoseconds(time.time_ns())
        out.attempts = 1
        return response
    build_outcome(root, response.outcome,
                  request.detail == pb.orchestrator.OUTCOME_DETAIL_ROOT)
    return response


async def serve(listen):
    server = grpc.aio.server(options=[
        ("grpc.max_receive_message_length", 256 << 20),
        ("grpc.max_send_message_length", -1)])
    # What generated code's add_OrchestratorServicer_to_server registers.
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(
        "weft.v1.Orchestrator", {"Run": grpc.unary_unary_rpc_method_handler(
            run, request_deserializer=pb.orchestrator.RunRequest.FromString,
            response_serializer=pb.orchestrator.RunResponse.SerializeToString)}),))
    port = server.add_insecure_port(listen)
    if port == 0:
        sys.exit("python_peer: cannot listen on " + listen)
    await server.start()
    print("listening on %s:%d" % (listen.rsplit(":", 1)[0], port), flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(grace=1)


def comparable(outcome):
    """An outcome as a dict, without its times."""
    d = pb.json_format.MessageToDict(outcome)
    stack = [d]
    while stack:
        n = stack.pop()
        n.pop("startTime", None)
        n.pop("endTime", None)
        stack.extend(n.get("children", ()))
    return d


def check_against(weft_addr, peer_addr):
    """Sends bench.py's peer scenarios to both servers; compares outcomes."""
    sys.path.insert(0, HERE)
    sys.dont_write_bytecode = True  # No bench/__pycache__ left behind.
    import bench  # noqa: E402: the scenarios, as the benchmark sends them.
    differ = 0
    for name, request, *_ in bench.SCENARIOS:
        if name not in bench.PYTHON_PEER_SCENARIOS:
            continue
        req = pb.json_format.ParseDict(request, pb.orchestrator.RunRequest())
        got = {}
        for label, addr in (("weft", weft_addr), ("peer", peer_addr)):
            with grpc.insecure_channel(addr) as channel:
                call = channel.unary_unary(
                    "/weft.v1.Orchestrator/Run",
                    request_serializer=pb.orchestrator.RunRequest.SerializeToString,
                    response_deserializer=pb.orchestrator.RunResponse.FromString)
                got[label] = comparable(call(req, timeout=30).outcome)
        same = got["weft"] == got["peer"]
        differ += not same
        print("%s: %s" % (name, "same outcome as weft's (times aside)" if same else
                          "DIFFERENT\n  weft: %r\n  peer: %r" % (got["weft"], got["peer"])))
    return 1 if differ else 0


def main():
    global pb
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--listen", default="127.0.0.1:0")
    p.add_argument("--proto_dir", default=os.path.join(ROOT, "proto"))
    p.add_argument("--check", nargs=2, metavar=("WEFT_ADDR", "PEER_ADDR"))
    args = p.parse_args()
    with tempfile.TemporaryDirectory(prefix="weft_python_peer_") as out:
        pb = generate(os.path.abspath(args.proto_dir), out)
        if args.check:
            return check_against(*args.check)
        asyncio.run(serve(args.listen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
