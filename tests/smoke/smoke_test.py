"""Smoke test: a real weftd process, driven with `buf curl` and the weft CLI.

Checks what a newcomer does first: list services and methods through
reflection, call the health service without local .proto files, run the
dashboard plan, see a bad plan refused while weftd stays up, use the CLI's
exit codes, and stop weftd with SIGTERM or SIGINT.
"""

import json
import os
import re
import signal
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from weftd import ARGS, Weftd, WeftdTest, assemble, run_tests  # noqa: E402

DASHBOARD = """{"plan": {"parallel": {"children": [
  {"id": "user",  "call": {"handler": "sleep", "args": {"duration": "0.3s", "value": {"name": "Ada"}}}},
  {"id": "posts", "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": ["p1", "p2"]}}},
  {"id": "stats", "call": {"handler": "value", "args": {"value": {"followers": 42}}}}
]}}}"""


# The README's failover: the primary fails, the backup wins, the last resort
# is cancelled.
FAILOVER = """{"plan": {"race": {"children": [
  {"id": "primary", "call": {"handler": "fail", "args": {"code": "UNAVAILABLE", "message": "primary is down", "after": "0.05s"}}},
  {"id": "backup", "call": {"handler": "sleep", "args": {"duration": "0.2s", "value": {"hits": 3}}}},
  {"id": "fallback", "timeout": "2s", "call": {"handler": "sleep", "args": {"duration": "1s", "value": {"hits": 0}}}}
]}}}"""


def timeline_rows(text):
    """`weft --timeline` output as {label: (bar columns drawn, state, notes)};
    labels keep their indentation. The axis line's "0" marks where bars
    start."""
    lines = text.splitlines()
    bar_start = lines[0].index("0")
    rows = {}
    for line in lines[1:]:
        m = re.fullmatch(r"([ =]*)  (succeeded|failed|cancelled|timed out|skipped|running)"
                         r" +(\S+)?(?:  (.*))?", line[bar_start:])
        assert m, "not a timeline row: %r\n%s" % (line, text)
        rows[line[:bar_start].rstrip()] = (m.group(1).count("="), m.group(2), m.group(4) or "")
    return rows


class SmokeTest(WeftdTest):
    @classmethod
    def setUpClass(cls):
        cls.weftd = cls.class_weftd()

    def test_reflection_lists_the_services(self):
        r = self.curl("--list-services", "http://{addr}")
        self.assertEqual(r.returncode, 0, r.stderr)
        services = r.stdout.split()
        self.assertIn("weft.v1.Orchestrator", services)
        self.assertIn("grpc.health.v1.Health", services)

    def test_reflection_describes_the_methods(self):
        r = self.curl("--list-methods", "http://{addr}")
        self.assertEqual(r.returncode, 0, r.stderr)
        methods = set(r.stdout.split())
        self.assertLessEqual({"weft.v1.Orchestrator/Run", "weft.v1.Orchestrator/ListHandlers",
                              "grpc.health.v1.Health/Check", "grpc.health.v1.Health/Watch"},
                             methods)

    def test_health_check_through_reflection_says_serving(self):
        r = self.curl("http://{addr}/grpc.health.v1.Health/Check")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout), {"status": "SERVING"})

    def test_dashboard_plan_returns_values_by_id(self):
        r = self.curl("-d", DASHBOARD, "http://{addr}/weft.v1.Orchestrator/Run")
        self.assertEqual(r.returncode, 0, r.stderr)
        outcome = json.loads(r.stdout)["outcome"]
        self.assertEqual(outcome["state"], "NODE_STATE_SUCCEEDED")
        # Each value once, at its leaf; the parallel's is built from them.
        self.assertNotIn("value", outcome)
        self.assertEqual(outcome["join"], "JOIN_ALL")
        self.assertEqual(assemble(outcome), {"user": {"name": "Ada"}, "posts": ["p1", "p2"],
                                             "stats": {"followers": 42}})
        self.assertEqual([c["id"] for c in outcome["children"]], ["user", "posts", "stats"])
        for child in outcome["children"]:
            self.assertEqual(child["state"], "NODE_STATE_SUCCEEDED")
            self.assertIn("startTime", child)
            self.assertIn("endTime", child)

    def test_bad_plan_is_invalid_argument_and_weftd_stays_up(self):
        bad = {"plan": {"parallel": {"children": [
            {"call": {"handler": "sleep", "args": {"duration": "-1s"}}}]}}}
        err = self.refused("Run", bad, "invalid_argument", "INVALID_FIELD")
        self.assertIn("plan.parallel.children[0].call.args.duration: must not be negative",
                      err["message"])
        self.assertEqual([v["field"] for v in err["details"]["BadRequest"]],
                         ["plan.parallel.children[0].call.args.duration"])
        self.assertEqual(self.curl("http://{addr}/grpc.health.v1.Health/Check").returncode, 0)

    def test_cli_run_prints_the_outcome_and_exits_zero(self):
        r = self.weft("run", "-", stdin=DASHBOARD)
        self.assertEqual(r.returncode, 0, r.stderr)
        outcome = json.loads(r.stdout)["outcome"]
        self.assertEqual(outcome["value"]["stats"], {"followers": 42})

    def test_cli_draws_the_readme_examples_as_timelines(self):
        r = self.weft("run", "--timeline", "-", stdin=DASHBOARD)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertNotIn("\033[", r.stdout, "no colour when piped")
        rows = timeline_rows(r.stdout)
        self.assertEqual(list(rows), ["parallel", "  user", "  posts", "  stats"], r.stdout)
        self.assertTrue(all(state == "succeeded" for _, state, _ in rows.values()), r.stdout)
        # user (0.3 s) spans the whole axis; posts (0.2 s) about two thirds.
        self.assertEqual(rows["  user"][0], rows["parallel"][0], r.stdout)
        self.assertLess(rows["  posts"][0], rows["  user"][0], r.stdout)
        self.assertLess(rows["  stats"][0], rows["  posts"][0], r.stdout)

        r = self.weft("run", "--timeline", "-", stdin=FAILOVER)
        self.assertEqual(r.returncode, 0, r.stderr)
        rows = timeline_rows(r.stdout)
        self.assertEqual(list(rows), ["race", "  primary", "  backup", "  fallback"], r.stdout)
        self.assertEqual(rows["race"][1:], ("succeeded", "winner backup"), r.stdout)
        self.assertEqual(rows["  primary"][1], "failed", r.stdout)
        self.assertIn("UNAVAILABLE: primary is down", rows["  primary"][2])
        self.assertEqual(rows["  backup"][1:], ("succeeded", "winner"), r.stdout)
        self.assertEqual(rows["  fallback"][1], "cancelled", r.stdout)
        self.assertLess(rows["  primary"][0], rows["  backup"][0], r.stdout)

    def test_cli_draws_a_tasks_outcome_as_a_timeline(self):
        r = self.weft("task", "create", "--wait", "-", stdin=FAILOVER)
        self.assertEqual(r.returncode, 0, r.stderr)
        name = json.loads(r.stdout)["name"]
        r = self.weft("task", "get", "--timeline", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        header, drawing = r.stdout.split("\n", 1)
        self.assertEqual(header, name + "  SUCCEEDED")
        self.assertEqual(timeline_rows(drawing)["race"][1:], ("succeeded", "winner backup"))

    def test_cli_exit_codes(self):
        failing = '{"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}}'
        r = self.weft("run", "-", stdin=failing)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(json.loads(r.stdout)["outcome"]["state"], "NODE_STATE_FAILED")

        r = self.weft("run", "-", stdin='{"parallel": {"children": []}}')
        self.assertEqual(r.returncode, 2)
        self.assertIn("INVALID_ARGUMENT: plan.parallel.children", r.stderr)
        # weftd's refusal (the CLI prints its details), not the CLI's own.
        self.assertIn("\n  reason: INVALID_FIELD\n", r.stderr)

        r = self.weft("run", "-", stdin="not json")
        self.assertEqual(r.returncode, 64)
        r = self.weft("frobnicate")
        self.assertEqual(r.returncode, 64)
        self.assertIn('unknown command "frobnicate"', r.stderr)

        r = self.weft("health")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "SERVING"))
        r = self.weft("handlers")
        self.assertEqual(r.returncode, 0)
        self.assertIn("sleep: Waits args.duration", r.stdout)

    def test_cli_reads_a_plan_file(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            f.write('{"call": {"handler": "value", "args": {"value": "hi"}}}')
        try:
            r = self.weft("run", f.name)
            self.assertEqual(r.returncode, 0, r.stderr)
            self.assertEqual(json.loads(r.stdout)["outcome"]["value"], "hi")
        finally:
            os.unlink(f.name)
        r = self.weft("run", "/nonexistent/plan.json")
        self.assertEqual(r.returncode, 64)

    def test_cli_cannot_reach_a_dead_server(self):
        env = dict(os.environ, WEFT_ADDR="127.0.0.1:1")
        r = subprocess.run([ARGS.weft, "health"], capture_output=True, text=True,
                           timeout=120, env=env)
        self.assertEqual(r.returncode, 2)
        self.assertIn("UNAVAILABLE", r.stderr)


class LifecycleTest(WeftdTest):
    def test_sigterm_stops_with_exit_zero_and_a_log_line(self):
        with Weftd(ARGS.weftd, "--shutdown_grace=0.2s") as w:
            code, err = w.stop()
        self.assertEqual(code, 0, err)
        self.assertIn("serving on 127.0.0.1:", err)
        self.assertIn("stopped on SIGTERM; nothing was running", err)

    def test_sigint_stops_as_sigterm_does(self):
        with Weftd(ARGS.weftd, "--shutdown_grace=0.2s") as w:
            code, err = w.stop(signal.SIGINT)
        self.assertEqual(code, 0, err)
        self.assertIn("weftd: stopped on SIGINT; nothing was running", err)

    def test_help_prints_the_usage_and_every_flag_and_exits_zero(self):
        for binary, usage, flag in ((ARGS.weftd, "weftd [--flag=value ...]: runs plans",
                                     "--max_value_depth (default: 16)"),
                                    (ARGS.weft, "weft: runs plans on a weft server", "--addr")):
            for arg in ("--help", "-h"):
                r = subprocess.run([binary, arg], capture_output=True, text=True, timeout=60)
                self.assertEqual(r.returncode, 0, r.stderr)
                self.assertTrue(r.stdout.startswith(usage), r.stdout[:200])
                self.assertIn(flag, r.stdout)
                self.assertNotIn("No flags matched", r.stdout + r.stderr)

    def test_environment_sets_flags_and_command_line_wins(self):
        err = self.start_refused(env=dict(os.environ, WEFT_MAX_PLAN_DEPTH="0"))
        self.assertIn('WEFT_MAX_PLAN_DEPTH (--max_plan_depth): must be a whole number '
                      'from 1 to 41, got "0"', err)
        # Each depth within its range, but together too deep for clients.
        err = self.start_refused("--max_plan_depth=32")
        self.assertIn("--max_plan_depth 32 with --max_value_depth 16 would let weftd's "
                      "messages nest 117 protobuf message levels", err)
        err = self.start_refused(env=dict(os.environ, WEFT_MAX_PLAN_DEPTH="nope"))
        self.assertIn("WEFT_MAX_PLAN_DEPTH (--max_plan_depth): Illegal value 'nope'", err)
        # The command line overrides the environment.
        with Weftd(ARGS.weftd, "--max_plan_depth=3",
                   env=dict(os.environ, WEFT_MAX_PLAN_DEPTH="0")) as w:
            deep = {"plan": {"parallel": {"children": [{"parallel": {"children": [{"parallel": {
                "children": [{"call": {"handler": "value", "args": {"value": 1}}}]}}]}}]}}}
            err = self.refused("Run", deep, "invalid_argument", "PLAN_TOO_DEEP", weftd=w)
            self.assertIn("limit (--max_plan_depth)", err["message"])
            self.assertIn("deeper than 3 levels", err["message"])
            self.assertEqual(err["details"]["ErrorInfo"]["metadata"],
                             {"flag": "--max_plan_depth", "limit": "3"})

    def test_config_file_sets_flags_and_declares_lazy_values(self):
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"maxActiveRuns": 7, "maxPlanDepth": 5,
                       "httpAllow": ["10.0.0.0/8", "api.example.com:443"], "lazyValues": [
                {"lazyValueId": "greeting", "lazyValue": {"plan": {"call": {
                    "handler": "value", "args": {"value": "hello"}}}}}]}, f)
        try:
            with Weftd(ARGS.weftd, "--config=" + f.name) as w:
                # Computed now, not from the cache, for generation 0 (proto3
                # JSON leaves out false and 0).
                resolved = self.ok("ResolveLazyValue", {"name": "lazyValues/greeting"},
                                   weftd=w)
                self.assertRegex(resolved.pop("computeTime"), r"^\d{4}-\d\d-\d\dT.*Z$")
                self.assertEqual(resolved, {"value": "hello"})
                _, log = w.stop()
            self.assertIn("max_active_runs=7 ", log)
            self.assertIn("max_plan_depth=5 ", log)
            self.assertIn("lazy_values=1)", log)
            self.assertIn("http_allow=10.0.0.0/8,api.example.com:443 ", log)
            # The environment overrides the file; the command line, both.
            with Weftd(ARGS.weftd, "--config=" + f.name, "--max_plan_depth=6",
                       env=dict(os.environ, WEFT_MAX_ACTIVE_RUNS="8")) as w:
                _, log = w.stop()
            self.assertIn("max_active_runs=8 ", log)
            self.assertIn("max_plan_depth=6 ", log)
        finally:
            os.unlink(f.name)

    def test_a_bad_config_file_stops_weftd_naming_the_field(self):
        cases = [
            ({"maxPlanNodes": "many"}, 'maxPlanNodes: expected a whole number, got "many"'),
            ({"eventLoopThreads": 100000}, "must be a whole number from 1 to 64"),
            ({"maxPlanNodes": 5, "max_plan_nodes": 6}, "maxPlanNodes: given more than once"),
            ({"maxPlanNode": 5}, "maxPlanNode: Cannot find field"),
            ({"lazyValues": [{"lazyValueId": "x", "lazyValue": {"plan": {"call": {
                "handler": "slep"}}}}]},
             'lazy_values[0].lazy_value.plan.call.handler: unknown handler "slep"'),
        ]
        for config, message in cases:
            with self.subTest(config=config):
                self.assertIn(message, self.start_refused(config=config))

    def test_the_make_run_config_declares_daily_stats(self):
        config = os.path.join(os.path.dirname(__file__), "..", "..", "config", "weftd.json")
        with Weftd(ARGS.weftd, "--config=" + config) as w:
            got = self.ok("GetLazyValue", {"name": "lazyValues/daily_stats"}, weftd=w)
            self.assertEqual(got["state"], "LAZY_VALUE_STATE_EMPTY")

    def test_http_allow_is_checked_at_start_and_refusals_name_it(self):
        err = self.start_refused("--http_allow=10.0.0.0/33")
        self.assertIn("--http_allow: ", err)
        self.assertIn("10.0.0.0/33", err)
        plan = {"plan": {"call": {"handler": "http", "args": {"url": "http://127.0.0.1:9/x"}}}}
        for flags, message in [
                ((), "weftd allows no destinations (set --http_allow"),
                (("--http_allow=10.0.0.0/8",),
                 "the destination 127.0.0.1 port 9 is not allowed by --http_allow (10.0.0.0/8)")]:
            with Weftd(ARGS.weftd, *flags) as w:
                error = self.ok("Run", plan, weftd=w)["outcome"]["error"]
                self.assertEqual((error["code"], error["reason"]),
                                 ("PERMISSION_DENIED", "URL_NOT_ALLOWED"))
                self.assertIn(message, error["message"])

    def test_address_in_use_is_refused_clearly(self):
        with Weftd(ARGS.weftd) as w:
            err = self.start_refused("--listen=" + w.address)
        self.assertIn("cannot listen on " + w.address, err)


if __name__ == "__main__":
    run_tests("weftd", "weft", "buf")
