"""The http handler end to end: a real weftd, the HTTP fixture, and `buf curl`
(as grpcurl).

What the issue asks: the dashboard and failover examples run from grpcurl
against the fixture; the guard refuses every bypass form; a cancelled
background task's request is abandoned on the wire (the fixture sees the
connection close); and weftd stops cleanly with transfers in flight.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(__file__))
from weftd import ARGS, HttpFixture, Weftd, WeftdTest, assemble, run_tests, wait_for  # noqa: E402


def call(fixture, url, **args):
    return {"call": {"handler": "http", "args": dict(url=fixture.url(url), **args)}}


class HttpEndToEndTest(WeftdTest):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.fixture = cls.class_process(HttpFixture(ARGS.fixture).start())
        cls.weftd = cls.class_weftd("--http_allow=" + cls.fixture.address)

    def test_dashboard_three_sources_results_by_id(self):
        out = self.ok("Run", {"detail": "OUTCOME_DETAIL_ROOT", "plan": {"parallel": {"children": [
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
        out = self.ok("Run", {"plan": {"race": {"children": [
            dict(id="primary", **call(self.fixture, "/search?server=a&status=503")),
            dict(id="backup", **call(self.fixture, "/search?server=b&delay=200")),
            dict(id="fallback", timeout="2s", **call(self.fixture, "/search?server=c&hang=1")),
        ]}}})["outcome"]
        self.assertEqual(out["state"], "NODE_STATE_SUCCEEDED", out)
        self.assertEqual(out["winner"], "backup")
        self.assertNotIn("value", out)  # Each value once, at its leaf.
        self.assertEqual(assemble(out)["body"]["server"], "b")
        self.assertEqual(out["children"][0]["error"]["code"], "UNAVAILABLE")
        self.assertEqual(out["children"][0]["error"]["reason"], "HTTP_STATUS")
        self.assertIn("answered 503", out["children"][0]["error"]["message"])
        self.assertEqual(out["children"][2]["state"], "NODE_STATE_CANCELLED")
        self.assertEqual(out["children"][2]["error"]["reason"], "RACE_LOST")
        # The loser's connection was closed, not left hanging.
        wait_for(lambda: self.fixture.stats()["closedBeforeAnswer"] == closed + 1,
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
                out = self.ok("Run", {"plan": {
                    "retry": {"maxAttempts": 3, "initialBackoff": "0.01s",
                              "retryableCodes": ["PERMISSION_DENIED"]},
                    "call": {"handler": "http", "args": {"url": url}}}})
                error = out["outcome"]["error"]
                self.assertEqual((error["code"], error["reason"]),
                                 ("PERMISSION_DENIED", "URL_NOT_ALLOWED"), out)
                self.assertIn("is not allowed by --http_allow (%s)" % self.fixture.address,
                              error["message"])
                self.assertEqual(out["outcome"]["attempts"], 1)
        # A redirect from the allowed fixture to another port of this machine.
        out = self.ok("Run", {"plan": call(
            self.fixture, "/hop?location=http://2130706433:1/", follow_redirects=True)})
        self.assertEqual((out["outcome"]["error"]["code"], out["outcome"]["error"]["reason"]),
                         ("PERMISSION_DENIED", "URL_NOT_ALLOWED"), out)
        self.assertIn("127.0.0.1 port 1 is not allowed", out["outcome"]["error"]["message"])
        # Other schemes are bad input, refused before anything runs.
        for url in ["file:///etc/passwd", "gopher://127.0.0.1:%s/" % port]:
            err = self.refused("Run", {"plan": {"call": {"handler": "http", "args": {"url": url}}}},
                               "invalid_argument", "INVALID_FIELD")
            self.assertIn("only http and https URLs are allowed", err["message"])
            self.assertEqual([v["field"] for v in err["details"]["BadRequest"]],
                             ["plan.call.args.url"])
        # Only the redirect's first hop reached the fixture (and the first
        # stats() call, which the count includes).
        self.assertEqual(self.fixture.stats()["requests"], requests + 2)

    def test_the_callers_traceparent_is_passed_on_to_upstreams(self):
        trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        echo = call(self.fixture, "/echo")
        r = self.curl("-H", "traceparent: " + trace, "-d", json.dumps({"plan": echo}),
                      "http://{addr}/weft.v1.Orchestrator/Run")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["outcome"]["value"]["body"]["headers"]
                         ["traceparent"], trace)
        # A background task keeps it for its calls.
        r = self.curl("-H", "traceparent: " + trace, "-d", json.dumps({"plan": echo}),
                      "http://{addr}/weft.v1.Orchestrator/CreateTask")
        self.assertEqual(r.returncode, 0, r.stderr)
        name = json.loads(r.stdout)["name"]
        done = self.ok("WaitTask", {"name": name, "timeout": "30s"})
        self.assertEqual(done["state"], "TASK_STATE_SUCCEEDED", done)
        task = self.ok("GetTask", {"name": name})
        self.assertEqual(task["outcome"]["value"]["body"]["headers"]["traceparent"], trace)
        # A call's own header wins; a malformed traceparent is not passed on.
        own = call(self.fixture, "/echo", headers={"traceparent": "00-" + "1" * 32 + "-" +
                                                   "2" * 16 + "-00"})
        r = self.curl("-H", "traceparent: " + trace, "-d", json.dumps({"plan": own}),
                      "http://{addr}/weft.v1.Orchestrator/Run")
        self.assertEqual(json.loads(r.stdout)["outcome"]["value"]["body"]["headers"]
                         ["traceparent"], "00-" + "1" * 32 + "-" + "2" * 16 + "-00")
        r = self.curl("-H", "traceparent: not-a-trace", "-d", json.dumps({"plan": echo}),
                      "http://{addr}/weft.v1.Orchestrator/Run")
        self.assertNotIn("traceparent",
                         json.loads(r.stdout)["outcome"]["value"]["body"]["headers"])

    def test_cancelling_a_task_abandons_its_request_on_the_wire(self):
        closed = self.fixture.stats()["closedBeforeAnswer"]
        task = self.ok("CreateTask", {"plan": call(self.fixture, "/slow?hang=1")})
        wait_for(lambda: self.fixture.stats()["waiting"] > 0 and
                 self.ok("GetTask", {"name": task["name"]})["state"] == "TASK_STATE_RUNNING",
                 "the task's request to reach the fixture")
        self.ok("CancelTask", {"name": task["name"]})
        wait_for(lambda: self.fixture.stats()["closedBeforeAnswer"] == closed + 1,
                 "the fixture to see the connection close")
        done = self.ok("WaitTask", {"name": task["name"]})
        self.assertEqual(done["state"], "TASK_STATE_CANCELLED")
        self.assertEqual(done["outcome"]["error"]["reason"], "RUN_CANCELLED")

    def test_sigterm_with_a_call_in_flight_stops_cleanly(self):
        with HttpFixture(ARGS.fixture) as fixture, \
                Weftd(ARGS.weftd, "--http_allow=" + fixture.address,
                      "--shutdown_grace=0.2s") as w:
            self.ok("CreateTask", {"plan": call(fixture, "/slow?hang=1")}, weftd=w)
            wait_for(lambda: fixture.stats()["waiting"] == 1, "the request")
            code, log = w.stop()
            self.assertEqual(code, 0, log)
            self.assertIn("1 task(s) were cancelled when the 0.200s grace period ended", log)
            wait_for(lambda: fixture.stats()["closedBeforeAnswer"] == 1,
                     "the fixture to see the connection close")


if __name__ == "__main__":
    run_tests("weftd", "buf", "fixture")
