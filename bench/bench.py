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
"""

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "smoke"))
from weftd import Weftd  # noqa: E402


def children(n, leaf):
    return [json.loads(leaf) for _ in range(n)]


VALUE = '{"call": {"handler": "value", "args": {"value": 1}}}'

SCENARIOS = [
    # name, request, target ratio (or None), method (Run when absent)
    ("Run: one value call",
     {"plan": json.loads(VALUE)}, 0.7),
    ("CreateTask: one value call (the task runs and is kept)",
     {"plan": json.loads(VALUE)}, None, "CreateTask"),
    ("Run: parallel of 100 value calls, root-only outcome",
     {"detail": "OUTCOME_DETAIL_ROOT", "plan": {"parallel": {"children": children(100, VALUE)}}}, 0.25),
    ("Run: parallel of 100 value calls, full outcome",
     {"plan": {"parallel": {"children": children(100, VALUE)}}}, None),
    ("ResolveLazyValue: a warm value (computed once by a value call)",
     {"name": "lazyValues/bench_value"}, None, "ResolveLazyValue"),
    ("Run: race of three, two lose",
     {"plan": {"race": {"children": [
         {"call": {"handler": "sleep", "args": {"duration": "1s"}}},
         {"call": {"handler": "value", "args": {"value": "winner"}}},
         {"call": {"handler": "sleep", "args": {"duration": "1s"}}}]}}}, None),
]


def start(path, *flags):
    return Weftd(path, *flags)


def loadgen(args, target, method, request, label, request_type="weft.v1.RunRequest"):
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(request, f)
    out = os.path.join(tempfile.gettempdir(), "loadgen.json")
    try:
        subprocess.run(
            [args.loadgen, "--target=" + target, "--method=" + method,
             "--request_type=" + request_type, "--request_file=" + f.name,
             "--concurrency=%d" % args.concurrency, "--connections=%d" % args.connections,
             "--duration=%s" % args.duration, "--warmup=%s" % args.warmup,
             "--label=" + label, "--json_out=" + out],
            check=True, stdout=subprocess.DEVNULL)
        with open(out) as j:
            return json.load(j)
    finally:
        os.unlink(f.name)


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
    args = p.parse_args()
    b = os.path.abspath(args.build)
    args.weftd = os.path.join(b, "server", "weftd")
    args.weft = os.path.join(b, "client", "weft")
    args.loadgen = os.path.join(b, "bench", "loadgen")
    echo_bin = os.path.join(b, "bench", "echo_server")

    rows = []
    failed = []
    echo = subprocess.Popen([echo_bin, "--listen=127.0.0.1:0"], stdout=subprocess.PIPE, text=True)
    echo_addr = echo.stdout.readline().split()[-1]
    # The lazy value the ResolveLazyValue scenario reads.
    config = tempfile.NamedTemporaryFile("w", suffix=".json", delete=False)
    json.dump({"lazyValues": [{"lazyValueId": "bench_value", "lazyValue": {
        "plan": json.loads(VALUE)}}]}, config)
    config.close()
    rps = {}
    try:
        with Weftd(args.weftd, "--config=" + config.name) as w:
            for name, request, target, *method in SCENARIOS:
                method = method[0] if method else "Run"
                request_type = "weft.v1.%sRequest" % method
                e = loadgen(args, echo_addr, "/bench.Echo/Echo", request, "echo", request_type)
                r = loadgen(args, w.address, "/weft.v1.Orchestrator/" + method, request, "weft",
                            request_type)
                if r["errors"] or e["errors"]:
                    failed.append(name + ": calls failed")
                ratio = r["rps"] / e["rps"]
                ok = target is None or ratio >= target
                if not ok:
                    failed.append("%s: ratio %.2f < %.2f" % (name, ratio, target))
                rows.append((name, r, e, ratio, target, ok))
                rps[method] = rps.get(method, r["rps"])
    finally:
        echo.terminate()
        echo.wait()
        os.unlink(config.name)

    print()
    print("Load: concurrency %d over %d connections, %s measured after %s warm-up, "
          "client and servers on this machine (%d cores)."
          % (args.concurrency, args.connections, args.duration, args.warmup, os.cpu_count()))
    print()
    print("| scenario | request bytes | weft rps | weft p50 / p99 ms | echo rps | weft / echo | target |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for name, r, e, ratio, target, ok in rows:
        print("| %s | %d | %.0f | %.2f / %.2f | %.0f | %.2f | %s |" % (
            name, r["request_bytes"], r["rps"], r["p50_ms"], r["p99_ms"], e["rps"], ratio,
            "-" if target is None else ("≥ %.2f %s" % (target, "met" if ok else "MISSED"))))
    print()
    print("A warm ResolveLazyValue against a Run of one value call: %.2f of its rate."
          % (rps["ResolveLazyValue"] / rps["Run"]))

    print()
    scale = subprocess.run(
        [os.path.join(b, "bench", "scale_run"), "--weftd=" + args.weftd,
         "--leaves=100000", "--sleep=1s", "--runs=2"],
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

    print()
    hs = subprocess.run(
        [os.path.join(b, "bench", "http_scale"), "--weftd=" + args.weftd,
         "--calls=1000", "--delay_ms=200", "--runs=3"],
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
        ok = (f["answered"] == "1000" and wd == wb and f["state"] == "NODE_STATE_SUCCEEDED"
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

    print()
    tasks = subprocess.run(
        [os.path.join(b, "bench", "task_scale"), "--weftd=" + args.weftd,
         "--tasks=100000", "--sleep=1s"],
        capture_output=True, text=True, timeout=900)
    print("Tasks: 100,000 background tasks of one 1 s sleep each, created by one client "
          "(256 calls in flight on one channel), admission limits raised by flags:")
    print()
    print("| created | errors | creation rate | all SUCCEEDED after | weftd extra peak RSS | per task |")
    print("| --- | --- | --- | --- | --- | --- |")
    for line in tasks.stdout.splitlines():
        f = dict(kv.split("=", 1) for kv in line.split())
        print("| %s | %s | %s/s | %s (%s SUCCEEDED, %s other) | %s MB | %s bytes |" % (
            f["created"], f["errors"], f["create_rate"][:-2], f["all_succeeded_after"],
            f["succeeded"], f["other"], f["weftd_extra_peak_rss_mb"], f["peak_bytes_per_task"]))
    if tasks.returncode != 0:
        failed.append("task_scale: not every task succeeded: " + (tasks.stdout + tasks.stderr)[-300:])

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
         "--benchmark_filter=BM_ValueCallNode|BM_ParallelOfValues/100$|BM_RaceOfValues/100"],
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

    print()
    if failed:
        print("Targets missed: " + "; ".join(failed))
    else:
        print("Every target met.")
    return 0


if __name__ == "__main__":
    sys.exit(main())
