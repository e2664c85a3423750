"""Lazy values end to end: a real weftd, `buf curl` (as grpcurl) and the CLI.

The issue's "done when": a lazy value over a 1 s sleep, 200 resolves fired at
once (weft CLI processes, which start fast), one load and 200 identical
answers; a reset, and the next resolve computes again; the counters show it.
"""

import argparse
import json
import os
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from weftd import Weftd, assemble, buf_curl  # noqa: E402

ARGS = None

SLOW_STATS = '{"call": {"handler": "sleep", "args": {"duration": "1s", "value": {"visits": 42}}}}'


class LazyTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.weftd = Weftd(ARGS.weftd)

    @classmethod
    def tearDownClass(cls):
        cls.weftd.stop()

    def env(self):
        return dict(os.environ, WEFT_ADDR=self.weftd.address)

    def weft(self, *args, stdin=None):
        return subprocess.run([ARGS.weft, *args], input=stdin, capture_output=True,
                              text=True, timeout=120, env=self.env())

    def call(self, method, body):
        return buf_curl(ARGS.buf, self.weftd.address, "-d", json.dumps(body),
                        "http://{addr}/weft.v1.Orchestrator/" + method)

    def ok(self, method, body):
        r = self.call(method, body)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def test_two_hundred_resolves_at_once_make_one_load(self):
        r = self.weft("lazy", "create", "daily_stats", "-", "--ttl=3600s", stdin=SLOW_STATS)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "LAZY_VALUE_STATE_EMPTY")

        procs = [subprocess.Popen([ARGS.weft, "lazy", "resolve", "daily_stats"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                  text=True, env=self.env()) for _ in range(200)]
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
        r = self.call("ResolveLazyValue", {"name": "lazyValues/ping"})
        err = json.loads(r.stdout or r.stderr)
        self.assertEqual(err["code"], "failed_precondition")
        self.assertIn("lazyValues/ping -> lazyValues/pong -> lazyValues/ping", err["message"])

    def test_bad_requests_name_what_is_wrong(self):
        r = self.call("CreateLazyValue", {"lazyValueId": "Daily Stats", "lazyValue": {
            "plan": {"call": {"handler": "value", "args": {"value": 1}}}}})
        err = json.loads(r.stdout or r.stderr)
        self.assertEqual(err["code"], "invalid_argument")
        self.assertIn('lazy_value_id: "Daily Stats"', err["message"])
        r = self.call("GetLazyValue", {"name": "lazyValues/never"})
        err = json.loads(r.stdout or r.stderr)
        self.assertEqual(err["code"], "not_found")
        r = self.weft("lazy", "create", "x", "-", "--ttl=soon", stdin=SLOW_STATS)
        self.assertEqual(r.returncode, 64)
        self.assertIn('--ttl: expected a duration like 3600s, got "soon"', r.stderr)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--weft", required=True)
    parser.add_argument("--buf", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])
