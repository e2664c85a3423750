"""Secrets end to end: a real weftd with --secrets, a durable store and the
HTTP fixture, reached through `buf curl` (as grpcurl) and the CLI.

An API key goes to the upstream in a header ({"$secret": "api_key"}); the
upstream (the fixture's /echo) sends the headers back. The key must reach the
upstream and appear nowhere weft keeps or says anything: not in the stored
task (the SQLite file), not in GetTask, WaitTask, ListTasks or Run's answers,
not in weftd's log. Unknown names are refused before anything runs; SIGHUP
reads the file again (a bad file keeps the old secrets); a bad file at start
stops weftd naming the file and never quoting a value.
"""

import glob
import hashlib
import json
import os
import shutil
import signal
import sys
import tempfile

sys.path.insert(0, os.path.dirname(__file__))
from weftd import ARGS, HttpFixture, Weftd, WeftdTest, run_tests, wait_for  # noqa: E402

KEY = "sk-live-7Qx2Vb9Lm4"
NEW_KEY = "sk-live-rotated-8Hd3"


def secrets(**values):
    return json.dumps({"secrets": values})


class SecretsTest(WeftdTest):
    maxDiff = None

    @classmethod
    def setUpClass(cls):
        cls.dir = tempfile.mkdtemp(prefix="weft-secrets-")
        cls.addClassCleanup(shutil.rmtree, cls.dir)
        cls.fixture = cls.class_process(HttpFixture(ARGS.fixture).start())

    def path(self, name):
        return os.path.join(self.dir, name)

    def start(self, name, values):
        path = self.path(name + ".json")
        with open(path, "w") as f:
            f.write(values)
        weftd = Weftd(ARGS.weftd, "--secrets=" + path,
                      "--store=sqlite:" + self.path(name + ".db"),
                      "--http_allow=" + self.fixture.address)
        self.addCleanup(weftd.stop)
        return weftd, path

    def echo_plan(self):
        return {"call": {"handler": "http", "args": {
            "url": self.fixture.url("/echo"),
            "headers": {"x-api-key": {"$secret": "api_key"}}}}}

    def test_the_key_reaches_the_upstream_and_nothing_weft_keeps_or_says(self):
        weftd, _ = self.start("keep", secrets(api_key=KEY))
        answers = []
        # Run: the upstream got the key; the answer shows its name.
        run = self.ok("Run", {"plan": self.echo_plan()}, weftd=weftd)
        answers.append(json.dumps(run))
        headers = run["outcome"]["value"]["body"]["headers"]
        self.assertEqual(headers["x-api-key"], "[secret api_key]")

        # A task: created, waited for, read in full, listed.
        task = self.ok("CreateTask", {"plan": self.echo_plan()}, weftd=weftd)
        answers.append(json.dumps(task))
        waited = self.ok("WaitTask", {"name": task["name"], "timeout": "30s"}, weftd=weftd)
        answers.append(json.dumps(waited))
        self.assertEqual(waited["state"], "TASK_STATE_SUCCEEDED", waited)
        full = self.ok("GetTask", {"name": task["name"], "view": "TASK_VIEW_FULL"}, weftd=weftd)
        answers.append(json.dumps(full))
        self.assertEqual(full["plan"]["call"]["args"]["headers"]["x-api-key"],
                         {"$secret": "api_key"})
        self.assertEqual(full["outcome"]["value"]["body"]["headers"]["x-api-key"],
                         "[secret api_key]")
        listed = self.ok("ListTasks", {"view": "TASK_VIEW_FULL"}, weftd=weftd)
        answers.append(json.dumps(listed))
        cli = self.weft("task", "get", task["name"], weftd=weftd)
        self.assertEqual(cli.returncode, 0, cli.stderr)
        answers.append(cli.stdout + cli.stderr)
        for text in answers:
            self.assertNotIn(KEY, text)

        # Stopped, the store and the log hold no trace of it either.
        weftd.stop()
        stored = b""
        for p in glob.glob(self.path("keep.db*")):
            with open(p, "rb") as f:
                stored += f.read()
        self.assertIn(task["name"].split("/")[1].encode(), stored)  # The task is there.
        self.assertNotIn(KEY.encode(), stored)
        self.assertNotIn(KEY, weftd.log())

    def test_an_unknown_name_is_refused_before_anything_runs(self):
        weftd, _ = self.start("unknown", secrets(api_key=KEY))
        before = self.fixture.stats()["requests"]
        plan = {"sequence": {"children": [
            {"call": {"handler": "http", "args": {"url": self.fixture.url("/echo")}}},
            {"call": {"handler": "value", "args": {"value": {"$secret": "apikey"}}}}]}}
        for method in ("Run", "CreateTask"):
            err = self.refused(method, {"plan": plan}, "invalid_argument", "UNKNOWN_SECRET",
                               weftd=weftd)
            self.assertIn('plan.sequence.children[1].call.args.value.$secret: "apikey" is not '
                          "a secret this weftd knows (--secrets)", err["message"])
        # Only the second stats request came since: no call ran.
        self.assertEqual(self.fixture.stats()["requests"], before + 1)

    def test_sighup_reads_the_file_again_and_keeps_it_when_bad(self):
        weftd, path = self.start("hup", secrets(api_key=KEY))

        def hashed():
            out = self.ok("Run", {"plan": {"call": {"handler": "hash", "args": {
                "data": {"$secret": "api_key"}, "rounds": 1}}}}, weftd=weftd)
            return out["outcome"]["value"]

        self.assertEqual(hashed(), hashlib.sha256(KEY.encode()).hexdigest())
        with open(path, "w") as f:
            f.write(secrets(api_key=NEW_KEY, extra="x"))
        weftd.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "read --secrets again (2 secrets)" in weftd.log(), "the reload")
        self.assertEqual(hashed(), hashlib.sha256(NEW_KEY.encode()).hexdigest())

        with open(path, "w") as f:
            f.write('{"secrets": {"bad name": "%s"}}' % KEY)
        weftd.proc.send_signal(signal.SIGHUP)
        wait_for(lambda: "the secrets in force stay" in weftd.log(), "the refusal")
        self.assertIn('secrets["bad name"]', weftd.log())
        self.assertEqual(hashed(), hashlib.sha256(NEW_KEY.encode()).hexdigest())
        self.assertNotIn(KEY, weftd.log())
        self.assertNotIn(NEW_KEY, weftd.log())

    def test_a_bad_file_at_start_stops_weftd_naming_it_not_its_values(self):
        bad = self.path("bad.json")
        with open(bad, "w") as f:
            f.write('{"secrets": {"api_key": "%s", "": "x"}}' % KEY)
        msg = self.start_refused("--secrets=" + bad)
        self.assertIn(bad, msg)
        self.assertIn('secrets[""]', msg)
        self.assertNotIn(KEY, msg)
        with open(bad, "w") as f:
            f.write('{"secrets": {"api_key": "%s",}' % KEY)
        msg = self.start_refused("--secrets=" + bad)
        self.assertIn("not JSON", msg)
        self.assertNotIn(KEY, msg)
        msg = self.start_refused("--secrets=" + self.path("missing.json"))
        self.assertIn(self.path("missing.json"), msg)


if __name__ == "__main__":
    run_tests("weftd", "weft", "buf", "fixture")
