#!/usr/bin/env python3
"""make bench: every benchmark of weft in one run, as ratios to a baseline.

Starts a bare gRPC echo server (bench/echo_server.cc) and weftd, sends each
scenario's request to both with the same closed-loop load generator
(bench/loadgen.cc), and prints a table with weft's requests per second as a
fraction of echo's for the same bytes. Then the scale runs: 100,000 sleeping
leaves in one Run (bench/scale_run.cc), 1,000 http calls at once to the local
HTTP fixture (bench/http_scale.cc), 100,000 background tasks created
by one client (bench/task_scale.cc), sleeps beside a saturated hash pool
(lateness measured from the server's own timestamps), and the engine's
per-node costs (bench/engine_bench.cc). Targets are checked and marked.

The scenarios a Python service could serve the same way (one value call, a
parallel of 100) also go to bench/python_peer.py, a grpc.aio server doing a
parallel's fan-out with asyncio.TaskGroup, measured with the same load and
printed in a table of their own (skipped, saying so, without python3-grpcio).

Each request scenario runs in rounds (--runs, default 3): a round measures
echo, each of the scenario's variants (weftd configurations: plaintext,
the plan cache off, metrics on, TLS with a bearer token; the memory and
SQLite stores) and the
Python peer back to back, the order reversed every other round, so that a
change in the machine's load moves every server of a round alike. Rates are
printed as the median and range of the rounds, ratios as the median and
range of each round's ratio; a target is met when the median meets it.

  bench/bench.py --build=build                      # everything
  bench/bench.py --only='^Run: (one value call|parallel of 100 value calls)'
      # those request scenarios alone, with the Python peer; no scale, HTTP,
      # task or engine runs
  bench/bench.py --build=build --smoke              # ctest bench_smoke: every
      # benchmark briefly, at small sizes; exits 1 only if calls failed or a
      # program did not finish its work

It exits 1 when something is broken (calls failed, the Python peer's outcomes
differ from weft's, a scale program did not finish); missed targets are
printed, not an error.
"""

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "smoke"))
from weftd import Weftd  # noqa: E402


def children(n, leaf):
    return [json.loads(leaf) for _ in range(n)]


VALUE = '{"call": {"handler": "value", "args": {"value": 1}}}'

# The weftd configurations the scenarios' variants run on: flags added to
# the bench's own (its config file, with the lazy value ResolveLazyValue
# reads). {tmp} is a scratch folder, {certs} the test CA's certificates,
# {tokens} a --auth_tokens file naming the principal "bench" (token
# "bench-token").
SERVERS = {
    "plaintext": [],
    # Run's plan cache off: every request parsed and compiled, as for a
    # client whose requests all differ.
    "no plan cache": ["--plan_cache_bytes=0"],
    "metrics on": ["--metrics_listen=127.0.0.1:0"],
    "TLS + token": ["--tls_cert={certs}/server.pem", "--tls_key={certs}/server.key",
                    "--auth_tokens={tokens}"],
    "memory": [],
    "SQLite": ["--store=sqlite:{tmp}/bench.db"],
}
# What loadgen adds for a server's calls.
CLIENT_FLAGS = {
    "TLS + token": ["--tls_ca={certs}/ca.pem", "--token=bench-token"],
}

# Each scenario: its name; the request; the method; its variants (the
# server configurations it runs on, each measured in every round beside
# echo); its targets: ("echo", variant, at least) for a variant's rate over
# echo's, ("variant", a, b, at least) for variant a's rate over b's, measured
# in the same rounds.
SCENARIOS = [
    ("Run: one value call", {"plan": json.loads(VALUE)}, "Run",
     ["plaintext", "no plan cache", "metrics on", "TLS + token"],
     [("echo", "plaintext", 0.8), ("variant", "TLS + token", "plaintext", 0.85)]),
    ("CreateTask: one value call (the task runs and is kept)", {"plan": json.loads(VALUE)},
     "CreateTask", ["memory", "SQLite"], [("variant", "SQLite", "memory", 0.5)]),
    ("Run: parallel of 100 value calls, root-only outcome",
     {"detail": "OUTCOME_DETAIL_ROOT",
      "plan": {"parallel": {"children": children(100, VALUE)}}}, "Run",
     ["plaintext", "no plan cache"], [("echo", "plaintext", 0.3)]),
    ("Run: parallel of 100 value calls, full outcome",
     {"plan": {"parallel": {"children": children(100, VALUE)}}}, "Run", ["plaintext"], []),
    ("Run: map of 100 items, root-only outcome",
     {"detail": "OUTCOME_DETAIL_ROOT",
      "plan": {"map": {"items": list(range(100)), "child": {"call": {
          "handler": "value", "args": {"value": {"$ref": "$item"}}}}}}},
     "Run", ["plaintext"], []),
    ("Run: a sequence of three whose steps read earlier ones ($ref, $format)",
     {"plan": {"sequence": {"children": [
         {"id": "user", "call": {"handler": "value", "args": {"value": {
             "id": 7, "tags": ["a", "b"]}}}},
         {"id": "path", "call": {"handler": "value", "args": {"value": {
             "$format": "users/{user.id}/{user.tags[1]}"}}}},
         {"call": {"handler": "value", "args": {"value": {
             "user": {"$ref": "user"}, "path": {"$ref": "path"}}}}}]}}},
     "Run", ["plaintext"], []),
    ("ResolveLazyValue: a warm value (computed once by a value call)",
     {"name": "lazyValues/bench_value"}, "ResolveLazyValue", ["plaintext"], []),
    ("Run: race of three, two lose",
     {"plan": {"race": {"children": [
         {"call": {"handler": "sleep", "args": {"duration": "1s"}}},
         {"call": {"handler": "value", "args": {"value": "winner"}}},
         {"call": {"handler": "sleep", "args": {"duration": "1s"}}}]}}}, "Run", ["plaintext"],
     []),
]

# Python peer targets: (scenario, weft over Python, at least).
PYTHON_TARGETS = [("Run: parallel of 100 value calls, root-only outcome", 5.0)]


def start(path, *flags):
    return Weftd(path, *flags)


# The scenarios bench/python_peer.py serves (the same request bytes to the
# same method), measured against it as well.
PYTHON_PEER_SCENARIOS = {
    "Run: one value call",
    "Run: parallel of 100 value calls, root-only outcome",
    "Run: parallel of 100 value calls, full outcome",
}


def python_peer_interpreter():
    """A Python with grpcio and protobuf for bench/python_peer.py, and what
    it is: (path, "grpcio X, Python Y at PATH"), or (None, why not).
    This Python if it has them, else Debian's (where python3-grpcio goes)."""
    probe = "import sys, grpc, google.protobuf; print(grpc.__version__, sys.version.split()[0])"
    for python in dict.fromkeys([sys.executable, "/usr/bin/python3"]):
        try:
            r = subprocess.run([python, "-c", probe], capture_output=True, text=True, timeout=60)
        except OSError:
            continue
        if r.returncode == 0:
            grpc_v, py_v = r.stdout.split()
            return python, "grpcio %s, Python %s at %s" % (grpc_v, py_v, python)
    return None, ("python3-grpcio or python3-protobuf is not installed "
                  "(apt-get install python3-grpcio python3-protobuf)")


def start_python_peer(python):
    """bench/python_peer.py on a free port: (process, address)."""
    proc = subprocess.Popen([python, os.path.join(HERE, "python_peer.py"),
                             "--listen=127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if not line.startswith("listening on "):
        proc.kill()
        proc.wait()
        raise RuntimeError("python_peer.py did not start: %r" % line)
    return proc, line.split()[-1]


def loadgen(args, target, method, request, label, request_type="weft.v1.RunRequest",
            extra=(), background=False, concurrency=None, duration=None):
    """loadgen's result (a dict); with `background`, a function that waits
    for it, the load running meanwhile. `concurrency` and `duration`
    override the command line's."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(request, f)
    fd, out = tempfile.mkstemp(suffix=".json", prefix="loadgen-")
    os.close(fd)
    proc = subprocess.Popen(
        [args.loadgen, "--target=" + target, "--method=" + method,
         "--request_type=" + request_type, "--request_file=" + f.name,
         "--concurrency=%d" % (concurrency or args.concurrency),
         "--connections=%d" % args.connections,
         "--duration=%s" % (duration or args.duration), "--warmup=%s" % args.warmup,
         "--label=" + label, "--json_out=" + out] + list(extra),
        stdout=subprocess.DEVNULL)

    def result():
        try:
            if proc.wait() != 0:
                raise subprocess.CalledProcessError(proc.returncode, args.loadgen)
            with open(out) as j:
                return json.load(j)
        finally:
            os.unlink(f.name)
            os.unlink(out)
    return result if background else result()


def quotas(args):
    """Bob's Run of one value call (4 in flight), alone and then while alice
    keeps 64 runs of a 50 ms sleep in flight against a quota of 16
    (--max_runs_per_principal): bob's rate and latency, and what alice got."""
    def sha(token):
        return hashlib.sha256(token.encode()).hexdigest()
    tokens = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"principals": [
        {"name": "alice", "role": "user", "tokenSha256": sha("alice-token")},
        {"name": "bob", "role": "user", "tokenSha256": sha("bob-token")}]}, tokens)
    tokens.close()
    value = {"plan": json.loads(VALUE)}
    sleep = {"plan": {"call": {"handler": "sleep", "args": {"duration": "0.05s"}}}}
    method = "/weft.v1.Orchestrator/Run"
    try:
        with Weftd(args.weftd, "--auth_tokens=" + tokens.name,
                   "--max_runs_per_principal=16") as w:
            bob = {"extra": ["--token=bob-token"], "concurrency": 4}
            alone = loadgen(args, w.address, method, value, "bob alone", **bob)
            # Alice's load starts first and ends after bob's.
            alice = loadgen(args, w.address, method, sleep, "alice", background=True,
                            extra=["--token=alice-token"], concurrency=64,
                            duration="%.1fs" % (seconds(args.duration) + 2))
            time.sleep(seconds(args.warmup) / 2)
            busy = loadgen(args, w.address, method, value, "bob beside alice", **bob)
            return alone, busy, alice()
    finally:
        os.unlink(tokens.name)


def seconds(text):
    """A duration flag's value ("5s", "500ms") in seconds."""
    return float(text[:-2]) / 1000 if text.endswith("ms") else float(text.rstrip("s"))


def median(results):
    """The run with the median rate, of loadgen results."""
    return sorted(results, key=lambda x: x["rps"])[(len(results) - 1) // 2]


def ratios(a, b):
    """Rate of a over rate of b, for each pair of runs measured back to back:
    (median, lowest, highest). Steadier than a ratio of medians when the
    machine's load moves between runs."""
    v = sorted(x["rps"] / y["rps"] for x, y in zip(a, b))
    return statistics.median(v), v[0], v[-1]


def lateness(args):
    """100 ms sleeps beside a saturated hash pool: how late each one ended,
    from the server's own start and end times."""
    plan = {"parallel": {"children": [
        {"id": "hashes", "parallel": {"join": "JOIN_ALL_SETTLED", "children": [
            {"offload": {"pool": "default", "child": {"call": {"handler": "hash",
                "args": {"data": "x", "rounds": 1_000_000}}}}} for _ in range(8)]}},
        {"id": "sleeps", "parallel": {"children": [
            {"sequence": {"children": [
                {"call": {"handler": "sleep", "args": {"duration": "0.1s"}}}
                for _ in range(10)]}} for _ in range(20)]}}]}}
    with Weftd(args.weftd) as w:
        env = dict(os.environ, WEFT_ADDR=w.address)
        r = subprocess.run([args.weft, "run", "-"], input=json.dumps({"plan": plan}),
                           capture_output=True, text=True, env=env, timeout=300)
    outcome = json.loads(r.stdout)["outcome"]
    late = []

    def seconds(t):
        # RFC 3339 with nanoseconds, all in the same minute or so.
        m = re.match(r".*T(\d\d):(\d\d):(\d\d(?:\.\d+)?)Z", t)
        return int(m.group(1)) * 3600 + int(m.group(2)) * 60 + float(m.group(3))

    for seq in outcome["children"][1]["children"]:
        for sleep in seq["children"]:
            late.append((seconds(sleep["endTime"]) - seconds(sleep["startTime"]) - 0.1) * 1000)
    hashes = outcome["children"][0]["children"]
    busy = (max(seconds(h["endTime"]) for h in hashes)
            - min(seconds(h["startTime"]) for h in hashes))
    late.sort()
    return {"samples": len(late), "p50_ms": statistics.median(late),
            "p99_ms": late[int(0.99 * (len(late) - 1))], "max_ms": late[-1],
            "pool_busy_s": busy}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--build", default="build")
    p.add_argument("--concurrency", type=int, default=32)
    p.add_argument("--connections", type=int, default=2)
    p.add_argument("--duration", default="5s")
    p.add_argument("--warmup", default="1s")
    p.add_argument("--only", metavar="REGEX",
                   help="run only the request scenarios whose name matches (and their "
                   "Python peer rows); skips the scale, HTTP, task, lateness and engine runs")
    p.add_argument("--runs", type=int, default=3,
                   help="rounds per scenario: each round measures echo, every variant of "
                   "the scenario and the Python peer back to back (the order reversed every "
                   "other round); rates printed are medians, ratios the median of the "
                   "rounds' ratios, each with its range")
    p.add_argument("--no_python_peer", action="store_true",
                   help="skip the Python grpc.aio peer (bench/python_peer.py)")
    p.add_argument("--smoke", action="store_true",
                   help="check that every benchmark starts and its calls succeed: each "
                   "briefly, small sizes, one round, no targets judged (ctest bench_smoke)")
    args = p.parse_args()
    if args.smoke:
        args.duration, args.warmup, args.runs, args.concurrency = "0.3s", "0.1s", 1, 4
    b = os.path.abspath(args.build)
    args.weftd = os.path.join(b, "server", "weftd")
    if os.path.isdir(args.weftd):  # Built from server/weftd/: build/server/weftd/weftd.
        args.weftd = os.path.join(args.weftd, "weftd")
    args.weft = os.path.join(b, "client", "weft")
    args.loadgen = os.path.join(b, "bench", "loadgen")
    echo_bin = os.path.join(b, "bench", "echo_server")

    scenarios = [s for s in SCENARIOS if args.only is None or re.search(args.only, s[0])]
    rows = []
    comparisons = []
    # What is broken rather than slow: calls that failed, programs that did
    # not finish their work. bench.py exits 1 if any.
    broken = []
    peer_rows = []
    failed = []
    peer_skipped = None
    if args.no_python_peer:
        peer_skipped = "--no_python_peer"
    elif not any(s[0] in PYTHON_PEER_SCENARIOS for s in scenarios):
        peer_skipped = "none of its scenarios selected"
    else:
        peer_python, peer_about = python_peer_interpreter()
        if peer_python is None:
            peer_skipped = peer_about
    peer = None
    echo = subprocess.Popen([echo_bin, "--listen=127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    echo_addr = echo.stdout.readline().split()[-1]
    echo_tls = None
    scratch = tempfile.mkdtemp(prefix="weft-bench-")
    # The lazy value the ResolveLazyValue scenario reads.
    config = os.path.join(scratch, "weftd.json")
    with open(config, "w") as f:
        json.dump({"lazyValues": [{"lazyValueId": "bench_value", "lazyValue": {
            "plan": json.loads(VALUE)}}]}, f)
    places = {"tmp": scratch, "certs": os.path.join(scratch, "certs"),
              "tokens": os.path.join(scratch, "tokens.json")}
    needed = {v for s in scenarios for v in s[3]}
    if "TLS + token" in needed:
        subprocess.run(["bash", os.path.join(HERE, "..", "deploy", "make_certs.sh"),
                        places["certs"]], check=True, capture_output=True, timeout=120)
        with open(places["tokens"], "w") as f:
            json.dump({"principals": [{"name": "bench", "role": "admin", "tokenSha256":
                                       hashlib.sha256(b"bench-token").hexdigest()}]}, f)
        # Echo over TLS, measured in the same rounds: what TLS alone costs a
        # call, with client and server on these two cores.
        echo_tls = subprocess.Popen(
            [echo_bin, "--listen=127.0.0.1:0",
             "--tls_cert=%s/server.pem" % places["certs"],
             "--tls_key=%s/server.key" % places["certs"]],
            stdout=subprocess.PIPE, text=True)
        echo_tls_addr = echo_tls.stdout.readline().split()[-1]
    rps = {}
    try:
        with contextlib.ExitStack() as stack:
            servers = {}
            for name in SERVERS:
                if name in needed or (name == "plaintext" and peer_skipped is None):
                    flags = [f.format(**places) for f in SERVERS[name]]
                    servers[name] = stack.enter_context(
                        Weftd(args.weftd, "--config=" + config, *flags))
            if peer_skipped is None:
                try:
                    peer, peer_addr = start_python_peer(peer_python)
                except RuntimeError as e:
                    peer_skipped = str(e)
                    failed.append(peer_skipped)
                    broken.append(peer_skipped)
            if peer is not None:
                # Same plans, same outcomes: the peer does the work weft does.
                check = subprocess.run(
                    [peer_python, os.path.join(HERE, "python_peer.py"), "--check",
                     servers["plaintext"].address, peer_addr],
                    capture_output=True, text=True, timeout=120)
                if check.returncode != 0:
                    failed.append("python peer's outcomes differ from weft's: "
                                  + (check.stdout + check.stderr)[-500:])
                    broken.append(failed[-1])
            for name, request, method, variants, targets in scenarios:
                request_type = "weft.v1.%sRequest" % method
                with_peer = peer is not None and name in PYTHON_PEER_SCENARIOS
                runs = {"echo": [], "python": []}
                runs.update({v: [] for v in variants})
                with_echo_tls = "TLS + token" in variants and echo_tls is not None

                def measure(label):
                    if label == "echo":
                        return loadgen(args, echo_addr, "/bench.Echo/Echo", request, "echo",
                                       request_type)
                    if label == "echo TLS":
                        return loadgen(args, echo_tls_addr, "/bench.Echo/Echo", request,
                                       label, request_type,
                                       extra=[f.format(**places)
                                              for f in CLIENT_FLAGS["TLS + token"]])
                    if label == "python":
                        return loadgen(args, peer_addr, "/weft.v1.Orchestrator/" + method,
                                       request, "python", request_type)
                    return loadgen(args, servers[label].address,
                                   "/weft.v1.Orchestrator/" + method, request, label,
                                   request_type,
                                   extra=[f.format(**places)
                                          for f in CLIENT_FLAGS.get(label, [])])
                # Rounds: each server once per round, the order reversed every
                # other round, so that no server always runs first or last.
                order = (["echo", *variants] + (["echo TLS"] if with_echo_tls else [])
                         + (["python"] if with_peer else []))
                if with_echo_tls:
                    runs["echo TLS"] = []
                for round_ in range(args.runs):
                    for label in (order if round_ % 2 == 0 else order[::-1]):
                        runs[label].append(measure(label))
                errors = ["%s %d of %d" % (label, sum(x["errors"] for x in rs),
                                           sum(x["errors"] + x["ok"] for x in rs))
                          for label, rs in runs.items() if any(x["errors"] for x in rs)]
                if errors:
                    failed.append("%s: calls failed (%s)" % (name, ", ".join(errors)))
                    broken.append(failed[-1])
                for variant in variants:
                    target = next((t[2] for t in targets
                                   if t[0] == "echo" and t[1] == variant), None)
                    spread = ratios(runs[variant], runs["echo"])
                    ok = target is None or spread[0] >= target
                    if not ok:
                        failed.append("%s (%s): %.2f of echo < %.2f"
                                      % (name, variant, spread[0], target))
                    rows.append((name if len(variants) == 1 else "%s, %s" % (name, variant),
                                 runs[variant], runs["echo"], spread, target, ok))
                for _, over, under, target in (t for t in targets if t[0] == "variant"):
                    spread = ratios(runs[over], runs[under])
                    ok = spread[0] >= target
                    if not ok:
                        failed.append("%s: %s at %.2f of %s < %.2f"
                                      % (name, over, spread[0], under, target))
                    comparisons.append((name, over, under, spread, target, ok))
                if with_echo_tls:
                    # No target: the floor the TLS + token target sits on.
                    comparisons.append((name, "echo TLS", "echo",
                                        ratios(runs["echo TLS"], runs["echo"]), None, True))
                    comparisons.append((name, "TLS + token", "echo TLS",
                                        ratios(runs["TLS + token"], runs["echo TLS"]), None,
                                        True))
                if with_peer:
                    peer_rows.append((name, runs, variants[0]))
                    for peer_name, times in PYTHON_TARGETS:
                        if peer_name == name:
                            m = ratios(runs[variants[0]], runs["python"])[0]
                            if m < times:
                                failed.append("%s: %.1f times Python < %.1f"
                                              % (name, m, times))
                rps[method] = rps.get(method, median(runs[variants[0]])["rps"])
    finally:
        echo.terminate()
        echo.wait()
        if echo_tls is not None:
            echo_tls.terminate()
            echo_tls.wait()
        if peer is not None:
            peer.terminate()
            peer.wait()
        shutil.rmtree(scratch, ignore_errors=True)

    def spread_text(spread, digits=2):
        m, lo, hi = spread
        return "%.*f [%.*f-%.*f]" % (digits, m, digits, lo, digits, hi)

    def rates_text(results):
        v = [x["rps"] for x in results]
        return "%.0f [%.0f-%.0f]" % (median(results)["rps"], min(v), max(v))

    print()
    print("Load: concurrency %d over %d connections, %s measured after %s warm-up, "
          "client and servers on this machine (%d cores); %d rounds, each measuring echo "
          "and every variant of a scenario back to back (the order reversed every other "
          "round). Rates: median [lowest-highest] of the rounds; ratios: the median "
          "[lowest-highest] of each round's ratio. A target is met when the median meets it."
          % (args.concurrency, args.connections, args.duration, args.warmup, os.cpu_count(),
             args.runs))
    print()
    print("| scenario | request bytes | weft rps | weft p50 / p99 ms | echo rps | weft / echo "
          "| target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r, e, spread, target, ok in rows:
        m = median(r)
        print("| %s | %d | %s | %.2f / %.2f | %s | %s | %s |" % (
            name, m["request_bytes"], rates_text(r), m["p50_ms"], m["p99_ms"], rates_text(e),
            spread_text(spread),
            "-" if target is None else ("≥ %.2f %s" % (target, "met" if ok else "MISSED"))))
    if comparisons:
        print()
        print("| scenario | variant / variant | ratio | target |")
        print("| --- | --- | --- | --- |")
        for name, over, under, spread, target, ok in comparisons:
            print("| %s | %s / %s | %s | %s |" % (
                name, over, under, spread_text(spread),
                "-" if target is None else "≥ %.2f %s" % (target, "met" if ok else "MISSED")))
    if "ResolveLazyValue" in rps and "Run" in rps:
        print()
        print("A warm ResolveLazyValue against a Run of one value call: %.2f of its rate."
              % (rps["ResolveLazyValue"] / rps["Run"]))

    print()
    if peer_skipped is not None:
        print("Python peer (bench/python_peer.py): skipped: %s." % peer_skipped)
    else:
        print("Python peer: bench/python_peer.py, a grpc.aio server (%s; one event loop) "
              "running each parallel's children as coroutines in an asyncio.TaskGroup and "
              "returning the outcome weft returns; same load, same request bytes, in the "
              "same rounds:" % peer_about)
        print()
        print("| scenario | python rps | python p50 / p99 ms | weft rps | echo rps "
              "| python / echo | weft / echo | weft / python | target |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        for name, runs, variant in peer_rows:
            py = median(runs["python"])
            times = dict(PYTHON_TARGETS).get(name)
            over = ratios(runs[variant], runs["python"])
            print("| %s | %s | %.2f / %.2f | %s | %s | %s | %s | %s | %s |" % (
                name, rates_text(runs["python"]), py["p50_ms"], py["p99_ms"],
                rates_text(runs[variant]), rates_text(runs["echo"]),
                spread_text(ratios(runs["python"], runs["echo"]), 3),
                spread_text(ratios(runs[variant], runs["echo"])), spread_text(over, 1),
                "-" if times is None else "≥ %.1f %s" % (
                    times, "met" if over[0] >= times else "MISSED")))

    if args.only is not None:
        return finish(args, failed, broken)

    print()
    alone, busy, alice = quotas(args)
    print("Quotas (--auth_tokens, --max_runs_per_principal=16): bob's Run of one value "
          "call, 4 in flight, alone and while alice keeps 64 runs of a 50 ms sleep in flight "
          "(48 beyond her quota, refused PRINCIPAL_QUOTA and sent again at once):")
    print()
    print("| bob | rps | p50 / p99 ms | alice's runs admitted / refused per s |")
    print("| --- | --- | --- | --- |")
    for label, r in (("alone", alone), ("beside alice at her quota", busy)):
        print("| %s | %.0f | %.2f / %.2f | %s |" % (
            label, r["rps"], r["p50_ms"], r["p99_ms"], "-" if r is alone else
            "%.0f / %.0f" % (alice["rps"], alice["errors"] / (seconds(args.duration) + 2))))
    if busy["errors"] or alone["errors"]:
        failed.append("quotas: bob's calls failed")
        broken.append(failed[-1])
    if not alice["errors"]:
        failed.append("quotas: alice was never refused")

    print()
    scale = subprocess.run(
        [os.path.join(b, "bench", "scale_run"), "--weftd=" + args.weftd,
         "--leaves=%d" % (1000 if args.smoke else 100000), "--sleep=1s",
         "--runs=%d" % (1 if args.smoke else 2)],
        capture_output=True, text=True, timeout=600)
    print("Scale: one Run of 100,000 one-second sleeps, root-only outcome, a fresh weftd:")
    print()
    print("| run | wall | weftd extra peak RSS | weft's threads before / during | all threads before / during | target |")
    print("| --- | --- | --- | --- | --- | --- |")
    for line in scale.stdout.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        wall = f["wall"]
        secs = float(wall[:-1]) if wall.endswith("s") and not wall.endswith("ms") else 99
        rss = int(f["weftd_extra_peak_rss_mb"])
        tb, td = int(f["weftd_threads_before"]), int(f["weftd_threads_max_during"])
        wb, wd = int(f["weft_threads_before"]), int(f["weft_threads_max_during"])
        ok = secs < 1.5 and rss < 150 and wb == wd and f["state"] == "NODE_STATE_SUCCEEDED"
        if not ok:
            failed.append("scale %s: wall %s, rss %d MB, weft threads %d/%d" % (
                line.split()[0], wall, rss, wb, wd))
        print("| %s | %s | %d MB | %d / %d | %d / %d | < 1.5 s, < 150 MB, weft's threads unchanged: %s |" % (
            line.split()[0], wall, rss, wb, wd, tb, td, "met" if ok else "MISSED"))
    if scale.returncode != 0:
        failed.append("scale_run failed: " + scale.stderr[-300:])
        broken.append(failed[-1])

    print()
    http_calls = 20 if args.smoke else 1000
    hs = subprocess.run(
        [os.path.join(b, "bench", "http_scale"), "--weftd=" + args.weftd,
         "--calls=%d" % http_calls, "--delay_ms=200",
         "--runs=%d" % (1 if args.smoke else 3)],
        capture_output=True, text=True, timeout=600)
    print("HTTP: one Run of 1,000 `http` calls in parallel to the local HTTP fixture "
          "(tests/fixture, one epoll thread), which answers each after 200 ms; "
          "root-only outcome:")
    print()
    print("| run | answered | wall | new connections | weft's threads before / during "
          "| all threads before / during | target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for line in hs.stdout.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split()[1:])
        run = line.split()[0]
        wall = f["wall"]
        ms = float(wall[:-2]) if wall.endswith("ms") else float(wall[:-1]) * 1000
        tb, td = int(f["weftd_threads_before"]), int(f["weftd_threads_max_during"])
        wb, wd = int(f["weft_threads_before"]), int(f["weft_threads_max_during"])
        # The first run also opens 1,000 connections; later runs reuse them.
        ok = (f["answered"] == str(http_calls) and wd == wb and f["state"] == "NODE_STATE_SUCCEEDED"
              and (run == "first" or ms < 300))
        if not ok:
            failed.append("http %s: wall %s, answered %s, weft threads %d/%d" % (
                run, wall, f["answered"], wb, wd))
        print("| %s | %s | %s | %s | %d / %d | %d / %d | all answered, weft's threads "
              "unchanged%s: %s |" % (
                  run, f["answered"], wall, f["new_connections"], wb, wd, tb, td,
                  "" if run == "first" else ", < 300 ms", "met" if ok else "MISSED"))
    if hs.returncode != 0:
        failed.append("http_scale failed: " + hs.stderr[-300:])
        broken.append(failed[-1])

    print()
    print("Tasks: 100,000 background tasks of one 1 s sleep each, created by one client "
          "(256 calls in flight on one channel), admission limits raised by flags; in memory, "
          "then in an SQLite store (--store_sync=full, the default), which a new weftd then "
          "starts on with all 100,000 retained:")
    print()
    print("| store | created | errors | creation rate | CreateTask p50 / p99 "
          "| all SUCCEEDED after | weftd extra peak RSS | per task | on disk per task "
          "| restart with 100,000 |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    rates = {}
    for store in ("memory", "sqlite"):
        tasks = subprocess.run(
            [os.path.join(b, "bench", "task_scale"), "--weftd=" + args.weftd,
             "--tasks=%d" % (300 if args.smoke else 100000), "--sleep=1s",
             "--store=" + store]
            + (["--restart"] if store == "sqlite" else []),
            capture_output=True, text=True, timeout=900)
        for line in tasks.stdout.splitlines():
            f = dict(kv.split("=", 1) for kv in line.split())
            rates[store] = float(f["create_rate"][:-2])
            print("| %s | %s | %s | %s/s | %s / %s ms | %s (%s SUCCEEDED, %s other) | %s MB "
                  "| %s bytes | %s | %s |" % (
                      store, f["created"], f["errors"], f["create_rate"][:-2],
                      f["p50_ms"], f["p99_ms"], f["all_succeeded_after"], f["succeeded"],
                      f["other"], f["weftd_extra_peak_rss_mb"], f["peak_bytes_per_task"],
                      f["store_bytes_per_task"] + " bytes" if "store_bytes_per_task" in f
                      else "-",
                      f.get("restart", "-")))
            restart = f.get("restart", "0s")
            restart_s = (float(restart[:-2]) / 1000 if restart.endswith("ms")
                         else float(restart[:-1]))
            if restart_s >= 2:
                failed.append("restart with 100,000 tasks took %s (target: under 2 s)"
                              % f["restart"])
        if tasks.returncode != 0:
            failed.append("task_scale --store=%s: not every task succeeded: %s"
                          % (store, (tasks.stdout + tasks.stderr)[-300:]))
            broken.append(failed[-1])
    if "memory" in rates and "sqlite" in rates:
        ratio = rates["sqlite"] / rates["memory"]
        print()
        print("SQLite creates at %.2f of memory's rate (target: at least 0.5): %s"
              % (ratio, "met" if ratio >= 0.5 else "MISSED"))
        if ratio < 0.5:
            failed.append("SQLite task creation at %.2f of memory's rate" % ratio)

    print()
    lat = lateness(args)
    ok = lat["p99_ms"] < 25
    if not ok:
        failed.append("lateness p99 %.1f ms" % lat["p99_ms"])
    print("Lateness: %d sleeps of 100 ms (20 sequences of 10) beside 8 offloaded hashes of "
          "1,000,000 rounds on the 2-thread default pool (busy %.1f s), from the server's "
          "timestamps:" % (lat["samples"], lat["pool_busy_s"]))
    print()
    print("| p50 | p99 | max | target |")
    print("| --- | --- | --- | --- |")
    print("| %.2f ms | %.2f ms | %.2f ms | p99 < 25 ms: %s |" % (
        lat["p50_ms"], lat["p99_ms"], lat["max_ms"], "met" if ok else "MISSED"))

    print()
    eb = subprocess.run(
        [os.path.join(b, "bench", "engine_bench"), "--benchmark_format=json",
         "--benchmark_filter=BM_ValueCallNode|BM_ParallelOfValues/100$|BM_RaceOfValues/100"]
        + (["--benchmark_min_time=0.01"] if args.smoke else []),
        capture_output=True, text=True, timeout=600)
    bench = json.loads(eb.stdout)["benchmarks"]
    print("Engine, without gRPC (Google Benchmark):")
    print()
    print("| benchmark | per node | target |")
    print("| --- | --- | --- |")
    for x in bench:
        # node_ns is an inverted rate: seconds per node.
        per = x["node_ns"] * 1e9 if "node_ns" in x else x["real_time"]
        ok = per < 1000
        if x["name"] == "BM_ValueCallNode" and not ok:
            failed.append("value call node %.0f ns" % per)
        print("| %s | %.0f ns | %s |" % (
            x["name"], per, "< 1 µs: " + ("met" if ok else "MISSED")
            if x["name"] == "BM_ValueCallNode" else "-"))

    return finish(args, failed, broken)


def finish(args, failed, broken):
    """The last lines, and the exit code: 1 when something is broken (calls
    failed, a program did not finish its work); targets missed are reported,
    and not judged at all in a smoke run."""
    print()
    if args.smoke:
        print("Smoke run: " + ("BROKEN: " + "; ".join(broken) if broken
                               else "every benchmark started and its calls succeeded "
                               "(no target is judged in a smoke run)."))
    elif failed:
        print("Targets missed: " + "; ".join(failed))
    else:
        print("Every target met.")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
