"""Background tasks end to end: a real weftd, `buf curl` (as grpcurl) and the
weft CLI.

What the issue asks a user to be able to do with grpcurl alone: create a task,
watch its progress to the end, list tasks by label, and cancel one; then the
same with the CLI, whose watch draws a progress bar on a terminal (checked
through a pseudo-terminal) and prints JSON lines when piped.
"""

import json
import os
import pty
import re
import signal
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(__file__))
from weftd import ARGS, Weftd, WeftdTest, run_tests, wait_for  # noqa: E402

# Three leaves ending at 0.3 s, 0.6 s and 0.9 s: progress to watch.
STEPS = """{"parallel": {"children": [
  {"call": {"handler": "sleep", "args": {"duration": "0.3s"}}},
  {"call": {"handler": "sleep", "args": {"duration": "0.6s"}}},
  {"call": {"handler": "sleep", "args": {"duration": "0.9s"}}}
]}}"""
LONG = '{"call": {"handler": "sleep", "args": {"duration": "300s"}}}'
NAME = re.compile(r"^tasks/[0-9a-f]{32}$")


class TaskTest(WeftdTest):
    @classmethod
    def setUpClass(cls):
        cls.weftd = cls.class_weftd()

    # --- grpcurl alone --------------------------------------------------------

    def test_grpcurl_creates_watches_lists_and_cancels(self):
        task = self.ok("CreateTask", {"plan": json.loads(STEPS),
                                        "labels": {"suite": "grpcurl", "run": "1"}})
        self.assertRegex(task["name"], NAME)
        self.assertIn(task["state"], ("TASK_STATE_QUEUED", "TASK_STATE_RUNNING"))

        events = self.stream("WatchTask", {"name": task["name"]})
        # Numbered by the task's changes: increasing, maybe with gaps.
        sequences = [int(e["sequence"]) for e in events]
        self.assertEqual(sequences, sorted(set(sequences)))
        self.assertEqual(events[-1]["task"]["state"], "TASK_STATE_SUCCEEDED")
        done = [e["task"]["progress"].get("leavesDone", 0) for e in events]
        self.assertEqual(done, sorted(done), "progress never goes back")
        self.assertEqual(done[-1], 3)
        self.assertEqual(events[-1]["task"]["outcome"]["state"], "NODE_STATE_SUCCEEDED")
        for e in events[:-1]:
            self.assertNotEqual(e["task"]["state"], "TASK_STATE_SUCCEEDED")

        long = self.ok("CreateTask", {"plan": json.loads(LONG),
                                        "labels": {"suite": "grpcurl", "run": "2"}})
        listed = self.ok("ListTasks", {"labels": {"suite": "grpcurl"}})
        self.assertEqual([t["name"] for t in listed["tasks"]], [long["name"], task["name"]])
        listed = self.ok("ListTasks", {"labels": {"suite": "grpcurl", "run": "1"}})
        self.assertEqual([t["name"] for t in listed["tasks"]], [task["name"]])
        listed = self.ok("ListTasks", {"labels": {"suite": "grpcurl"},
                                         "states": ["TASK_STATE_RUNNING"]})
        self.assertEqual([t["name"] for t in listed["tasks"]], [long["name"]])

        cancelled = self.ok("CancelTask", {"name": long["name"]})
        self.assertEqual(cancelled["state"], "TASK_STATE_CANCELLED")
        self.assertEqual(cancelled["outcome"]["error"]["message"], "cancelled by CancelTask")
        self.assertEqual(cancelled["outcome"]["error"]["reason"], "RUN_CANCELLED")
        again = self.ok("CancelTask", {"name": long["name"]})
        self.assertEqual(again["endTime"], cancelled["endTime"], "cancel is idempotent")

        info = self.ok("GetServerInfo", {})
        self.assertIn("version", info)
        counts = {c["state"]: c["count"] for c in info["tasks"]}
        self.assertGreaterEqual(counts.get("TASK_STATE_CANCELLED", 0), 1)

    def test_grpcurl_errors_name_what_is_wrong(self):
        name = "tasks/0123456789abcdef0123456789abcdef"
        err = self.refused("GetTask", {"name": name}, "not_found", "TASK_NOT_FOUND")
        self.assertIn(name, err["message"])
        self.assertEqual(err["details"]["ResourceInfo"],
                         {"resource_type": "weft.v1.Task", "resource_name": name})

        err = self.refused("GetTask", {"name": "jobs/1"}, "invalid_argument", "INVALID_FIELD")
        self.assertIn("name:", err["message"])
        self.assertEqual([v["field"] for v in err["details"]["BadRequest"]], ["name"])

        err = self.refused("CreateTask", {"plan": {"parallel": {"children": []}}},
                           "invalid_argument", "INVALID_FIELD")
        self.assertIn("plan.parallel.children", err["message"])

        long = self.ok("CreateTask", {"plan": json.loads(LONG)})
        err = self.refused("DeleteTask", {"name": long["name"]}, "failed_precondition",
                           "TASK_NOT_FINISHED")
        self.assertEqual(err["details"]["ResourceInfo"]["resource_name"], long["name"])
        self.ok("CancelTask", {"name": long["name"]})
        self.ok("DeleteTask", {"name": long["name"]})

    # --- the CLI ----------------------------------------------------------------

    def test_cli_create_wait_get_list_cancel_delete(self):
        r = self.weft("task", "create", "-", "--label", "suite=cli", "--wait", stdin=STEPS)
        self.assertEqual(r.returncode, 0, r.stderr)
        done = json.loads(r.stdout)
        self.assertEqual(done["state"], "TASK_STATE_SUCCEEDED")
        self.assertEqual(done["labels"], {"suite": "cli"})

        failing = '{"call": {"handler": "fail", "args": {"code": "UNAVAILABLE"}}}'
        r = self.weft("task", "create", "-", "--label=suite=cli", "--wait", stdin=failing)
        self.assertEqual(r.returncode, 1, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "TASK_STATE_FAILED")

        r = self.weft("task", "create", "-", "--label", "suite=cli", stdin=LONG)
        self.assertEqual(r.returncode, 0, r.stderr)
        long = json.loads(r.stdout)["name"]

        r = self.weft("task", "wait", long, "--timeout=0.5s")
        self.assertEqual(r.returncode, 2)
        # The CLI's own DEADLINE_EXCEEDED, made from weftd's answer to
        # WaitTask (the task, still running, which it prints), not from a
        # failed call.
        self.assertIn("DEADLINE_EXCEEDED: %s is still RUNNING" % long, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "TASK_STATE_RUNNING")

        r = self.weft("task", "list", "--label", "suite=cli")
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = r.stdout.splitlines()
        self.assertEqual(lines[0].split(), ["NAME", "STATE", "LEAVES", "CREATED", "LABELS"])
        self.assertEqual([line.split()[0] for line in lines[1:]][0], long)
        self.assertEqual(len(lines), 4)

        r = self.weft("task", "list", "--label", "suite=cli", "--state", "failed", "--json")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual([t["state"] for t in json.loads(r.stdout)["tasks"]],
                         ["TASK_STATE_FAILED"])

        r = self.weft("task", "get", long.split("/")[1], "--full")
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["plan"]["call"]["handler"], "sleep")

        r = self.weft("task", "delete", long)
        self.assertEqual(r.returncode, 2)
        self.assertIn("FAILED_PRECONDITION", r.stderr)
        self.assertIn("\n  reason: TASK_NOT_FINISHED\n", r.stderr)
        r = self.weft("task", "cancel", long)
        self.assertEqual(r.returncode, 0, r.stderr)
        self.assertEqual(json.loads(r.stdout)["state"], "TASK_STATE_CANCELLED")
        r = self.weft("task", "wait", long)
        self.assertEqual(r.returncode, 1)
        r = self.weft("task", "delete", long)
        self.assertEqual((r.returncode, r.stdout.strip()), (0, "deleted " + long))
        r = self.weft("task", "get", long)
        self.assertEqual(r.returncode, 2)
        self.assertIn("NOT_FOUND: %s: deleted" % long, r.stderr)
        self.assertIn("\n  reason: TASK_NOT_FOUND\n", r.stderr)

    def test_cli_watch_prints_json_lines_when_piped(self):
        r = self.weft("task", "create", "-", "--watch", stdin=STEPS)
        self.assertEqual(r.returncode, 0, r.stderr)
        events = [json.loads(line) for line in r.stdout.splitlines()]
        sequences = [int(e["sequence"]) for e in events]
        self.assertEqual(sequences, sorted(set(sequences)))
        self.assertEqual(events[-1]["task"]["state"], "TASK_STATE_SUCCEEDED")

        # The task's changes: created, started, 3 leaves started and ended, ended.
        self.assertEqual(sequences[-1], 9)

        # A second watch of the finished task starts from its snapshot, the
        # end, under the same number.
        name = events[-1]["task"]["name"]
        r = self.weft("task", "watch", name)
        self.assertEqual(r.returncode, 0, r.stderr)
        [only] = [json.loads(line) for line in r.stdout.splitlines()]
        self.assertEqual((only["sequence"], only["task"]["state"]),
                         ("9", "TASK_STATE_SUCCEEDED"))

    def test_cli_watch_draws_a_progress_bar_on_a_terminal(self):
        master, slave = pty.openpty()
        env = dict(os.environ, WEFT_ADDR=self.weftd.address)
        proc = subprocess.Popen([ARGS.weft, "task", "create", "-", "--watch"],
                                stdin=subprocess.PIPE, stdout=slave, stderr=slave, env=env)
        os.close(slave)
        proc.stdin.write(STEPS.encode())
        proc.stdin.close()
        out = b""
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # The terminal closed: weft has exited.
                break
            if not chunk:
                break
            out += chunk
        os.close(master)
        self.assertEqual(proc.wait(timeout=120), 0, out)
        text = out.decode()
        frames = [f for f in text.replace("\x1b[K", "").split("\r") if f.strip()]
        self.assertRegex(frames[0].strip(), NAME)
        self.assertRegex(frames[-1], r"^\[#{30}\] 3/3 leaves  0 failed  0 running  "
                                     r"SUCCEEDED  \d+\.\ds\s*$")
        self.assertNotIn("{", text, "no JSON on a terminal")

    def test_cli_bad_usage(self):
        r = self.weft("task", "list", "--state", "sleeping")
        self.assertEqual(r.returncode, 64)
        self.assertIn('--state: unknown state "sleeping"', r.stderr)
        r = self.weft("task", "create", "-", "--label", "novalue", stdin=STEPS)
        self.assertEqual(r.returncode, 64)
        self.assertIn('--label: expected key=value, got "novalue"', r.stderr)
        r = self.weft("task", "create", "-", "--wait", "--watch", stdin=STEPS)
        self.assertEqual(r.returncode, 64)
        r = self.weft("task", "get")
        self.assertEqual(r.returncode, 64)
        self.assertIn("task get takes one NAME", r.stderr)
        r = self.weft("run", "-", "--label", "a=b", stdin=STEPS)
        self.assertEqual(r.returncode, 64)


class ShutdownTest(WeftdTest):
    def test_sigterm_gives_running_tasks_the_grace_then_cancels_them(self):
        with Weftd(ARGS.weftd, "--shutdown_grace=0.3s") as w:
            self.ok("CreateTask", {"plan": json.loads(LONG)}, weftd=w)
            code, log = w.stop()
        self.assertEqual(code, 0, log)
        self.assertIn("1 task(s) running; 0 run(s) and 1 task(s) were cancelled when the "
                      "0.300s grace period ended", log)

    def test_a_second_signal_cuts_the_grace_period_short(self):
        with Weftd(ARGS.weftd, "--shutdown_grace=60s") as w:
            self.ok("CreateTask", {"plan": json.loads(LONG)}, weftd=w)
            w.proc.send_signal(signal.SIGTERM)
            # Health says NOT_SERVING once weftd has taken the signal; a
            # second one sent before could merge with it.
            wait_for(lambda: "NOT_SERVING" in self.curl(
                "http://{addr}/grpc.health.v1.Health/Check", weftd=w).stdout,
                "weftd to take the first SIGTERM")
            err = self.refused("CreateTask", {"plan": json.loads(LONG)}, "unavailable",
                               "SHUTTING_DOWN", weftd=w)
            self.assertIn("RetryInfo", err["details"])
            started = time.monotonic()
            code, log = w.stop(timeout=30)
            self.assertLess(time.monotonic() - started, 20, "the grace period was not cut short")
        self.assertIn("0 run(s) and 1 task(s) were cancelled when the 60s grace period was "
                      "cut short by a second signal", log)


if __name__ == "__main__":
    run_tests("weftd", "weft", "buf")
