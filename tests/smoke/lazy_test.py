"""Lazy values end to end: a real weftd, `buf curl` (as grpcurl) and the CLI.

The issue's "done when": a lazy value over a 1 s sleep, 200 resolves fired at
once (weft CLI processes, which start fast), one load and 200 identical
answers; a reset, and the next resolve computes again; the counters show it.
"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(__file__))
from weftd import ARGS, WeftdTest, assemble, run_tests  # noqa: E402

SLOW_STATS = '{"call": {"handler": "sleep", "args": {"duration": "1s", "value": {"visits": 42}}}}'


class LazyTest(WeftdTest):
    @classmethod
    def setUpClass(cls):
        cls.weftd = cls.class_weftd()

    def test_two_hundred_resolves_at_once_make_one_load(self):
        r = self.weft("lazy", "create", "daily_stats", "-", "--ttl=3600s", stdin=SLOW_STATS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "LAZY_VALUE_STATE_EMPTY")

        env = dict(os.environ, WEFT_ADDR=self.weftd.address)
        procs = [subprocess.Popen([ARGS.weft, "lazy", "resolve", "daily_stats"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=env) for _ in range(200)]
        answers = []
        for p in procs:
            out, err = p.communicate(timeout=120)
            self.assertEqual(p.returncode, 0, err)
            answers.append(json.loads(out))
        self.assertEqual(answers, [{"visits": 42}] * 200)

        v = self.ok("GetLazyValue", {"name": "lazyValues/daily_stats"})
        self.assertEqual(v["state"], "LAZY_VALUE_STATE_READY")
        self.assertEqual(v["stats"]["loads"], "1")
        self.assertEqual(int(v["stats"].get("hits", 0)) + int(v["stats"]["misses"]), 200)

        reset = self.ok("ResetLazyValue", {"name": "lazyValues/daily_stats"})
        self.assertEqual((reset["state"], reset["generation"]),
                         ("LAZY_VALUE_STATE_EMPTY", "1"))
        # Computed again for generation 1, then served from the cache.
        resolved = self.ok("ResolveLazyValue", {"name": "lazyValues/daily_stats"})
        self.assertEqual((resolved["value"], resolved["generation"], resolved.get("cacheHit", False)),
                         ({"visits": 42}, "1", False))
        again = self.ok("ResolveLazyValue", {"name": "lazyValues/daily_stats"})
        self.assertEqual((again["value"], again["generation"], again["cacheHit"]),
                         ({"visits": 42}, "1", True))
        self.assertEqual(again["computeTime"], resolved["computeTime"])
        v = self.ok("GetLazyValue", {"name": "lazyValues/daily_stats"})
        self.assertEqual(v["stats"]["loads"], "2")

        info = self.ok("GetServerInfo", {})
        self.assertGreaterEqual(int(info["lazyValues"]["loads"]), 2)

        r = self.weft("lazy", "list")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertIn("lazyValues/daily_stats", r.stdout)
        r = self.weft("lazy", "delete", "daily_stats")
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "deleted lazyValues/daily_stats"))
        r = self.weft("lazy", "resolve", "daily_stats")
        self.assertEqual(r.returncode, 2)
        self.assertIn("NOT_FOUND: lazyValues/daily_stats: no such lazy value", r.stderr)
        self.assertIn("\n  reason: LAZY_VALUE_NOT_FOUND\n", r.stderr)

    def test_plans_resolve_lazy_values_and_cycles_are_named(self):
        self.ok("CreateLazyValue", {"lazyValueId": "greeting", "lazyValue": {
            "plan": {"call": {"handler": "value", "args": {"value": "hello"}}}}})
        run = self.ok("Run", {"plan": {"parallel": {"children": [
            {"id": "greeting", "lazy": {"name": "lazyValues/greeting"}},
            {"id": "name", "call": {"handler": "value", "args": {"value": "Ada"}}}]}}})
        self.assertEqual(assemble(run["outcome"]), {"greeting": "hello", "name": "Ada"})
        self.assertEqual(run["outcome"]["children"][0]["kind"], "NODE_KIND_LAZY")

        self.ok("CreateLazyValue", {"lazyValueId": "ping", "lazyValue": {
            "plan": {"lazy": {"name": "lazyValues/pong"}}}})
        self.ok("CreateLazyValue", {"lazyValueId": "pong", "lazyValue": {
            "plan": {"lazy": {"name": "lazyValues/ping"}}}})
        err = self.refused("ResolveLazyValue", {"name": "lazyValues/ping"},
                           "failed_precondition", "LAZY_VALUE_CYCLE")
        self.assertIn("lazyValues/ping -> lazyValues/pong -> lazyValues/ping", err["message"])

    def test_bad_requests_name_what_is_wrong(self):
        err = self.refused("CreateLazyValue", {"lazyValueId": "Daily Stats", "lazyValue": {
            "plan": {"call": {"handler": "value", "args": {"value": 1}}}}},
            "invalid_argument", "INVALID_FIELD")
        self.assertIn('lazy_value_id: "Daily Stats"', err["message"])
        self.assertEqual([v["field"] for v in err["details"]["BadRequest"]], ["lazy_value_id"])
        err = self.refused("GetLazyValue", {"name": "lazyValues/never"}, "not_found",
                           "LAZY_VALUE_NOT_FOUND")
        self.assertEqual(err["details"]["ResourceInfo"],
                         {"resource_type": "weft.v1.LazyValue",
                          "resource_name": "lazyValues/never"})
        r = self.weft("lazy", "create", "x", "-", "--ttl=soon", stdin=SLOW_STATS)
        self.assertEqual(r.returncode, 64)
        self.assertIn('--ttl: expected a duration like 3600s, got "soon"', r.stderr)


if __name__ == "__main__":
    run_tests("weftd", "weft", "buf")
