"""The harness the other tests stand on (harness.py): the wait for weftd to
serve gives up in time, a started program's output is read without
disturbing it, and a test's tasks are cleaned up."""

import sys
import textwrap
import threading
import time

import grpc
import pytest

from harness import Process, Tasks, wait_until_serving
from weft_client import WeftError, call, is_terminal


class FakeHealth:
    """A client whose health check answers `answers` in turn, the last one
    for ever (a WeftError is raised)."""

    def __init__(self, *answers):
        self._answers = list(answers)
        self.checks = 0

    def health(self, timeout=None):
        self.checks += 1
        answer = self._answers[0] if len(self._answers) == 1 else self._answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer


def wait_in_thread(client, timeout):
    """wait_until_serving(client, timeout), in a thread given ten seconds:
    what it raised (None if it returned), or AssertionError if it still
    waits."""
    outcome = []

    def wait():
        try:
            wait_until_serving(client, timeout=timeout)
            outcome.append(None)
        except Exception as e:  # noqa: BLE001 - handed to the test
            outcome.append(e)

    thread = threading.Thread(target=wait, daemon=True)
    thread.start()
    thread.join(timeout=10)
    assert not thread.is_alive(), "wait_until_serving waited far past its %gs" % timeout
    return outcome[0]


UNAVAILABLE = WeftError(grpc.StatusCode.UNAVAILABLE, "connection refused")


@pytest.mark.parametrize("answer", ["NOT_SERVING", UNAVAILABLE], ids=["not serving", "failing"])
def test_wait_until_serving_gives_up_at_its_deadline(answer):
    client = FakeHealth(answer)
    start = time.monotonic()
    error = wait_in_thread(client, timeout=0.5)
    assert isinstance(error, TimeoutError)
    assert "within 0.5s" in str(error) and str(answer) in str(error)
    assert time.monotonic() - start < 5 and client.checks >= 2


def test_wait_until_serving_returns_once_serving():
    client = FakeHealth(UNAVAILABLE, "NOT_SERVING", "SERVING")
    assert wait_in_thread(client, timeout=30) is None
    assert client.checks == 3


# Prints where it "listens" and a bulk of output in one write, then, once
# told to (the file argv[1] exists), one line more, and says so (argv[2]);
# exits 0 on SIGTERM.
CHILD = textwrap.dedent("""
    import os, signal, sys, time
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    os.write(1, sys.argv[3].encode())
    while not os.path.exists(sys.argv[1]):
        time.sleep(0.01)
    os.write(1, b"END\\n")
    open(sys.argv[2], "w").close()
    while True:
        time.sleep(1)
""")


def test_reading_a_programs_output_does_not_move_where_it_writes(tmp_path):
    # More than one read buffer before the first line is read: a reader
    # sharing the program's file offset (seek(0), readline()) would leave it
    # in the middle of the output, and the next line would be written over
    # what follows.
    first = "listening on 127.0.0.1:1\n" + ("y" * 99 + "\n") * 300
    go, written = tmp_path / "go", tmp_path / "written"
    child = Process("child", [sys.executable, "-c", CHILD, str(go), str(written), first],
                    r"listening on (\S+)")
    try:
        assert child.address == "127.0.0.1:1"
        go.touch()
        deadline = time.monotonic() + 30
        while not written.exists():
            assert time.monotonic() < deadline, "the child did not write its last line"
            time.sleep(0.01)
        assert child.stdout() == first + "END\n"
        assert child.stdout(limit=4) == "END\n" and child.stderr() == ""
    finally:
        child.stop()


def test_tasks_are_cancelled_and_deleted_whatever_their_state(client, unique):
    made = Tasks(client)
    labels = {"test": unique}
    running = made.create(call("sleep", duration="60s"), labels=labels).name
    ended = made.create(call("value", value=1), labels=labels).name
    assert is_terminal(client.wait_task(ended, wait=60))
    deleted = made.create(call("value", value=2), labels=labels).name
    assert is_terminal(client.wait_task(deleted, wait=60))
    client.delete_task(deleted)
    made.add(running)  # Twice: cleaned up once.

    started = time.monotonic()
    made.cleanup()
    assert time.monotonic() - started < 30, "the running task was cancelled, not waited for"
    assert list(client.list_tasks(labels=labels)) == []
    for name in (running, ended, deleted):
        with pytest.raises(WeftError) as caught:
            client.get_task(name)
        assert caught.value.reason == "TASK_NOT_FOUND"
    made.cleanup()  # Nothing left to do.


def test_tasks_cleanup_tries_every_task_then_reports_what_failed(client, unique):
    made = Tasks(client)
    made.add("tasks/not-a-task-id")
    task = made.create(call("sleep", duration="60s"), labels={"test": unique})
    with pytest.raises(AssertionError, match="not-a-task-id"):
        made.cleanup()
    with pytest.raises(WeftError) as caught:
        client.get_task(task.name)
    assert caught.value.reason == "TASK_NOT_FOUND"
