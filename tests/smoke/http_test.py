"""The http handler end to end: a real weftd, the HTTP fixture, and `buf curl`
(as grpcurl).

What the issue asks: the dashboard and failover examples run from grpcurl
against the fixture; the guard refuses every bypass form; a cancelled
background task's request is abandoned on the wire (the fixture sees the
connection close); and weftd stops cleanly with transfers in flight.
"""

import argparse
import json
import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from weftd import HttpFixture, Weftd, assemble, buf_curl  # noqa: E402

ARGS = None


def call(fixture, url, **args):
    return {"call": {"handler": "http", "args": dict(url=fixture.url(url), **args)}}


class HttpEndToEndTest(unittest.TestCase):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.fixture = HttpFixture(ARGS.fixture).__enter__()
        cls.weftd = Weftd(ARGS.weftd, "--http_allow=" + cls.fixture.address).__enter__()

    @classmethod
    def tearDownClass(cls):
        cls.weftd.__exit__(None, None, None)
        cls.fixture.__exit__(None, None, None)

    def rpc(self, method, request):
        r = buf_curl(ARGS.buf, self.weftd.address, "-d", json.dumps(request),
                     "http://{addr}/weft.v1.Orchestrator/" + method)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json.loads(r.stdout)

    def wait_for(self, condition, what):
        deadline = time.monotonic() + 60
        while not condition():
            if time.monotonic() > deadline:
                self.fail("timed out waiting for " + what)
            time.sleep(0.05)

    def test_dashboard_three_sources_results_by_id(self):
        out = self.rpc("Run", {"detail": "OUTCOME_DETAIL_ROOT", "plan": {"parallel": {"children": [
            dict(id="user", **call(self.fixture, "/users/42?delay=100")),
            dict(id="recentPosts", **call(self.fixture, "/users/42/posts?delay=100")),
            dict(id="statistics", **call(self.fixture, "/stats/42?delay=100")),
        ]}}})["outcome"]
        self.assertEqual(out["state"], "NODE_STATE_SUCCEEDED", out)
        value = out["value"]
        self.assertEqual(value["user"]["status"], 200)
        self.assertEqual(value["user"]["body"], {"id": 42, "name": "Ada Lovelace"})
        self.assertEqual(len(value["recentPosts"]["body"]), 2)
        self.assertEqual(value["statistics"]["body"]["followers"], 1843)
        self.assertEqual(value["statistics"]["headers"]["content-type"], "application/json")

    def test_failover_the_slow_mirror_wins_over_the_failing_one(self):
        closed = self.fixture.stats()["closedBeforeAnswer"]
        out = self.rpc("Run", {"plan": {"race": {"children": [
            dict(id="primary", **call(self.fixture, "/search?server=a&status=503")),
            dict(id="backup", **call(self.fixture, "/search?server=b&delay=200")),
            dict(id="fallback", timeout="2s", **call(self.fixture, "/search?server=c&hang=1")),
        ]}}})["outcome"]
        self.assertEqual(out["state"], "NODE_STATE_SUCCEEDED", out)
        self.assertEqual(out["winner"], "backup")
        self.assertNotIn("value", out)  # Each value once, at its leaf.
        self.assertEqual(assemble(out)["body"]["server"], "b")
        self.assertEqual(out["children"][0]["error"]["code"], "UNAVAILABLE")
        self.assertIn("answered 503", out["children"][0]["error"]["message"])
        self.assertEqual(out["children"][2]["state"], "NODE_STATE_CANCELLED")
        # The loser's connection was closed, not left hanging.
        self.wait_for(lambda: self.fixture.stats()["closedBeforeAnswer"] == closed + 1,
                      "the fixture to see the loser's connection close")

    def test_the_guard_refuses_every_bypass_form(self):
        port = self.fixture.address.split(":")[1]
        requests = self.fixture.stats()["requests"]
        # Allowed: 127.0.0.1 on the fixture's port only. Every form below
        # names another port or another address.
        for url in ["http://127.0.0.1:%s/" % self.weftd.address.split(":")[1],
                    "http://2130706433:1/", "http://0x7f.1:1/", "http://0177.0.0.1:1/",
                    "http://127.1:1/", "http://[::ffff:127.0.0.1]:1/", "http://[::1]:%s/" % port,
                    "http://localhost:1/", "http://169.254.169.254/latest/meta-data/",
                    "http://10.0.0.1/"]:
            with self.subTest(url=url):
                out = self.rpc("Run", {"plan": {"retry": {"maxAttempts": 3, "initialBackoff": "0.01s",
                                                           "retryableCodes": ["PERMISSION_DENIED"]},
                                                 "call": {"handler": "http", "args": {"url": url}}}})
                error = out["outcome"]["error"]
                self.assertEqual(error["code"], "PERMISSION_DENIED", out)
                self.assertIn("is not allowed by --http_allow (%s)" % self.fixture.address,
                              error["message"])
                self.assertEqual(out["outcome"]["attempts"], 1)
        # A redirect from the allowed fixture to another port of this machine.
        out = self.rpc("Run", {"plan": call(
            self.fixture, "/hop?location=http://2130706433:1/", follow_redirects=True)})
        self.assertEqual(out["outcome"]["error"]["code"], "PERMISSION_DENIED", out)
        self.assertIn("127.0.0.1 port 1 is not allowed", out["outcome"]["error"]["message"])
        # Other schemes are bad input, refused before anything runs.
        for url in ["file:///etc/passwd", "gopher://127.0.0.1:%s/" % port]:
            r = buf_curl(ARGS.buf, self.weftd.address, "-d", json.dumps(
                {"plan": {"call": {"handler": "http", "args": {"url": url}}}}),
                "http://{addr}/weft.v1.Orchestrator/Run")
            self.assertNotEqual(r.returncode, 0)
            self.assertIn("invalid_argument", r.stdout + r.stderr)
            self.assertIn("only http and https URLs are allowed", r.stdout + r.stderr)
        # Only the redirect's first hop reached the fixture (and the first
        # stats() call, which the count includes).
        self.assertEqual(self.fixture.stats()["requests"], requests + 2)

    def test_cancelling_a_task_abandons_its_request_on_the_wire(self):
        closed = self.fixture.stats()["closedBeforeAnswer"]
        task = self.rpc("CreateTask", {"plan": call(self.fixture, "/slow?hang=1")})
        self.wait_for(lambda: self.fixture.stats()["waiting"] > 0 and
                      self.rpc("GetTask", {"name": task["name"]})["state"] == "TASK_STATE_RUNNING",
                      "the task's request to reach the fixture")
        self.rpc("CancelTask", {"name": task["name"]})
        self.wait_for(lambda: self.fixture.stats()["closedBeforeAnswer"] == closed + 1,
                      "the fixture to see the connection close")
        done = self.rpc("WaitTask", {"name": task["name"]})
        self.assertEqual(done["state"], "TASK_STATE_CANCELLED")

    def test_sigterm_with_a_call_in_flight_stops_cleanly(self):
        with HttpFixture(ARGS.fixture) as fixture, \
                Weftd(ARGS.weftd, "--http_allow=" + fixture.address,
                      "--shutdown_grace=0.2s") as w:
            r = buf_curl(ARGS.buf, w.address, "-d", json.dumps(
                {"plan": call(fixture, "/slow?hang=1")}),
                "http://{addr}/weft.v1.Orchestrator/CreateTask")
            self.assertEqual(r.returncode, 0, r.stderr)
            self.wait_for(lambda: fixture.stats()["waiting"] == 1, "the request")
            code, log = w.stop()
            self.assertEqual(code, 0, log)
            self.wait_for(lambda: fixture.stats()["closedBeforeAnswer"] == 1,
                          "the fixture to see the connection close")


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--weft", required=True)
    parser.add_argument("--buf", required=True)
    parser.add_argument("--fixture", required=True)
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])
