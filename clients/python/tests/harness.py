"""What conftest.py's fixtures are made of, importable by the tests that check
it (test_harness.py): the programs started for a run, the wait for weftd to
serve, and the tasks a test made, cleaned up after it."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import tempfile
import time
from typing import Any, Optional

from weft_client import Client, WeftError, is_terminal
from weft_client.client import Task

# How long a process may take to print where it listens, weftd to answer its
# health check, and a process to exit after SIGTERM (a shared, busy machine).
START_TIMEOUT = 60
STOP_TIMEOUT = 60


class Process:
    """A program that prints where it listens as its first stdout line; its
    output goes to files, so it never blocks on a pipe.

    The program writes through file descriptions of its own; the tests read
    the files by path, each read through a new file object, so a read never
    moves the offset the program writes at."""

    def __init__(self, name: str, argv: list[str], first_line: str) -> None:
        self.name = name
        self._dir = tempfile.TemporaryDirectory(prefix="weft-test-%s-" % name)
        self._out = os.path.join(self._dir.name, "stdout")
        self._err = os.path.join(self._dir.name, "stderr")
        with open(self._out, "wb") as out, open(self._err, "wb") as err:
            self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=err)
        self.address = self._wait_for(first_line)

    def _wait_for(self, pattern: str) -> str:
        """The group of `pattern` in the first line, once it is written."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            with open(self._out, errors="replace") as out:
                line = out.readline()
            if line.endswith("\n"):
                match = re.fullmatch(pattern, line.rstrip("\n"))
                if not match:
                    self._kill()
                    raise RuntimeError("%s printed %r first; stderr:\n%s"
                                       % (self.name, line, self.stderr()))
                return match.group(1)
            if self._proc.poll() is not None:
                raise RuntimeError("%s exited with %s; stderr:\n%s"
                                   % (self.name, self._proc.returncode, self.stderr()))
            time.sleep(0.02)
        self._kill()
        raise RuntimeError("%s did not start within %ds; stderr:\n%s"
                           % (self.name, START_TIMEOUT, self.stderr()))

    def _kill(self) -> None:
        self._proc.kill()
        self._proc.wait()

    @staticmethod
    def _read(path: str, limit: Optional[int]) -> str:
        with open(path, errors="replace") as f:
            text = f.read()
        return text if limit is None else text[-limit:]

    def stdout(self, limit: Optional[int] = None) -> str:
        """What it has written to stdout so far (the last `limit` characters)."""
        return self._read(self._out, limit)

    def stderr(self, limit: Optional[int] = 4000) -> str:
        """What it has written to stderr so far (the last `limit` characters)."""
        return self._read(self._err, limit)

    def kill(self) -> None:
        """SIGKILL, as a crash: no chance to clean up."""
        self._kill()

    def send(self, sig: int) -> None:
        """Sends `sig` (SIGSTOP and SIGCONT pause and resume it)."""
        self._proc.send_signal(sig)

    def wait_exit(self, timeout: float) -> int:
        """Its exit code, once it has exited by itself."""
        return self._proc.wait(timeout=timeout)

    def stop(self) -> None:
        """SIGTERM; AssertionError unless it exits 0 in time."""
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._kill()
            raise AssertionError("%s did not exit within %ds of SIGTERM; stderr:\n%s"
                                 % (self.name, STOP_TIMEOUT, self.stderr()))
        assert code == 0, "%s exited with %s after SIGTERM; stderr:\n%s" % (
            self.name, code, self.stderr())


def wait_until_serving(client: Client, timeout: float = START_TIMEOUT) -> None:
    """Waits for weftd to answer its health check with SERVING (a compose
    service may still be starting); TimeoutError after `timeout` seconds,
    whether the check kept failing or kept answering NOT_SERVING."""
    deadline = time.monotonic() + timeout
    while True:
        error: Optional[WeftError] = None
        try:
            status = client.health(timeout=min(5.0, max(deadline - time.monotonic(), 0.1)))
        except WeftError as e:
            status, error = None, e
        if status == "SERVING":
            return
        if time.monotonic() >= deadline:
            raise TimeoutError("weftd did not answer SERVING within %gs (last: %s)"
                               % (timeout, error or status)) from error
        time.sleep(0.2)


class Tasks:
    """The tasks a test creates, cancelled if still queued or running, then
    deleted, by cleanup(): whether the test passed or not, nothing is left on
    a weftd that outlives the run (WEFT_ADDR)."""

    def __init__(self, client: Client, wait: float = 60) -> None:
        self._client = client
        self._wait = wait
        self._names: list[str] = []

    def create(self, plan: Any, *, via: Optional[Client] = None, **options: Any) -> Task:
        """client.create_task(plan, **options), through `via` if given; the
        task is cleaned up after the test."""
        task = (via or self._client).create_task(plan, **options)
        self.add(task.name)
        return task

    def add(self, name: str) -> None:
        """Cleans up the task `name` after the test too."""
        if name not in self._names:
            self._names.append(name)

    def cleanup(self) -> None:
        """Cancels every task not yet ended, then waits for each to end and
        deletes it (one the test deleted already is skipped). Tries them all,
        then raises an AssertionError naming what failed, if anything did."""
        names, self._names = self._names, []
        errors: list[Exception] = []
        ended: dict[str, bool] = {}
        for name in names:
            try:
                ended[name] = is_terminal(self._client.cancel_task(name))
            except WeftError as e:
                if e.reason != "TASK_NOT_FOUND":
                    errors.append(e)
        deadline = time.monotonic() + self._wait
        for name, done in ended.items():
            try:
                while not done:
                    wait = min(max(deadline - time.monotonic(), 0.1), 30)
                    done = is_terminal(self._client.wait_task(name, wait=wait, timeout=wait + 10))
                    if not done and time.monotonic() >= deadline:
                        raise TimeoutError("%s did not end within %gs of its cancellation"
                                           % (name, self._wait))
                self._client.delete_task(name)
            except WeftError as e:
                if e.reason != "TASK_NOT_FOUND":
                    errors.append(e)
            except TimeoutError as e:
                errors.append(e)
        if errors:
            raise AssertionError("the cleanup of the test's tasks failed: %s"
                                 % "; ".join(map(str, errors))) from errors[0]
