"""weftd with --store=sqlite:PATH, end to end: a deploy (SIGTERM) loses no
work and runs nothing twice that had ended; lazy values made through the API
survive and the config file's stay the config's; bad store files stop weftd
with a message naming them; a full disk refuses new tasks clearly and passes;
backups restore."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time

import pytest
from google.protobuf import json_format

from conftest import Weftd, journaled_leaves, program, refused
from harness import Process
from weft.v1 import orchestrator_pb2, task_pb2
from weft_client import WeftError, call, fmt, is_terminal, parallel, ref, sequence


def wait_for(condition, timeout: float = 60, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("%s did not hold within %gs" % (what, timeout))
        time.sleep(0.05)


def wait_to_end(client, name: str):
    task = client.wait_task(name, wait=60, timeout=90)
    assert is_terminal(task), task
    return client.get_task(name)


def test_the_memory_store_says_at_start_that_tasks_are_lost():
    p = Process("weftd", [program("WEFT_WEFTD"), "--listen=127.0.0.1:0"], r"listening on (\S+)")
    p.stop()
    assert ("tasks are kept in memory (--store=memory): they are lost when weftd exits"
            in p.stderr(limit=None))


def test_a_deploy_loses_nothing_and_runs_nothing_twice_that_had_ended(weftd, upstream):
    client = weftd.start("--max_running_tasks=1", "--shutdown_grace=0.5s")
    order = client.create_task(sequence(
        call("http", id="d1-charge", url=upstream.url("d1-charge")),
        call("sleep", id="d1-wait", duration="3s", value="waited"),
        call("http", id="d1-mail", url=upstream.url("d1-mail"))))
    queued = client.create_task(call("value", value="later"), request_id="d1-queued")
    assert queued.state == task_pb2.TASK_STATE_QUEUED
    wait_for(lambda: upstream.calls().get("d1-charge") == 1, what="the charge")
    wait_for(lambda: "d1-charge" in journaled_leaves(weftd.store), what="the journal")
    # A watcher's place before the deploy.
    stream = client._orchestrator.WatchTask(orchestrator_pb2.WatchTaskRequest(name=order.name))
    before = next(iter(stream)).sequence
    stream.cancel()

    log = weftd.stop()
    assert "1 task(s) stopped (they resume at the next start)" in log, log
    assert "2 unfinished task(s) stay in the store for the next start" in log, log

    client = weftd.start()
    assert "took back 0 finished, 1 queued and 1 running (resumed)" in weftd.process.stderr(), \
        weftd.process.stderr()
    got = client.get_task(order.name)
    assert got.state == task_pb2.TASK_STATE_RUNNING
    assert got.resumes == 1 and got.HasField("resume_time")
    # The watch goes on from where it was: the numbers only grow.
    stream = client._orchestrator.WatchTask(
        orchestrator_pb2.WatchTaskRequest(name=order.name, after_sequence=before))
    assert next(iter(stream)).sequence > before
    stream.cancel()
    # The same request_id still finds the queued task.
    assert client.create_task(call("value", value="later"), request_id="d1-queued").name \
        == queued.name

    done = wait_to_end(client, order.name)
    assert done.state == task_pb2.TASK_STATE_SUCCEEDED, done
    charge, wait, mail = done.outcome.children
    assert charge.recovered and not charge.ran_again
    assert wait.ran_again and wait.value.string_value == "waited"
    assert not mail.recovered and not mail.ran_again
    calls = upstream.calls()
    assert calls["d1-charge"] == 1 and calls["d1-mail"] == 1
    later = wait_to_end(client, queued.name)
    assert later.state == task_pb2.TASK_STATE_SUCCEEDED


def test_later_steps_read_the_journaled_values_of_earlier_ones_after_kill_9(weftd, upstream):
    """The user, then the user's posts, with a kill -9 between them: after
    the restart the posts' URL and the last step's value come from the user
    the journal kept, which is not fetched again."""
    client = weftd.start()
    base = "http://%s" % upstream.address
    task = client.create_task(sequence(
        call("http", id="user", url=base + "/users/42?key=d9-user"),
        call("sleep", id="pause", duration="3s"),
        call("http", id="posts", url=fmt(base + "/users/{user.body.id}/posts?key=d9-posts")),
        call("value", id="page", value={"author": ref("user.body.name"),
                                        "latest": ref("posts.body[0].title")})))
    wait_for(lambda: "user" in journaled_leaves(weftd.store), what="the user in the journal")
    weftd.kill()

    client = weftd.start()
    done = wait_to_end(client, task.name)
    assert done.state == task_pb2.TASK_STATE_SUCCEEDED, done
    user, pause, posts, page = done.outcome.children
    assert user.recovered and not user.ran_again
    assert pause.ran_again and not posts.recovered
    assert posts.value.struct_value["status"] == 200
    assert json.loads(json_format.MessageToJson(page.value)) == {
        "author": "Ada Lovelace", "latest": "Notes on the Analytical Engine"}
    calls = upstream.calls()
    assert calls["d9-user"] == 1 and calls["d9-posts"] == 1


def test_lazy_values_made_through_the_api_survive_and_the_configs_stay_its(weftd, tmp_path):
    config = tmp_path / "weftd.json"

    def declare(value: str) -> None:
        config.write_text(json.dumps({"lazyValues": [
            {"lazyValueId": "from_config",
             "lazyValue": {"plan": {"call": {"handler": "value", "args": {"value": value}}}}},
            {"lazyValueId": "shadowed",
             "lazyValue": {"plan": {"call": {"handler": "value", "args": {"value": "config"}}}}},
        ]}))

    declare("v1")
    client = weftd.start("--config=" + str(config))
    client.create_lazy_value("made", call("value", value="by the api"))
    client.delete_lazy_value("from_config")
    weftd.stop()

    client = weftd.start("--config=" + str(config))
    assert client.resolve_lazy_value("made").value == "by the api"
    # Deleted through the API, declared again by the config file.
    assert client.resolve_lazy_value("from_config").value == "v1"
    client.delete_lazy_value("made")
    weftd.stop()

    # Made through the API under an id the config file declares later: the
    # config's definition wins, with a log line.
    config.write_text(json.dumps({}))
    client = weftd.start("--config=" + str(config))
    with pytest.raises(WeftError) as gone:
        client.get_lazy_value("made")
    assert gone.value.reason == "LAZY_VALUE_NOT_FOUND"
    client.create_lazy_value("shadowed", call("value", value="api"))
    weftd.stop()
    declare("v2")
    client = weftd.start("--config=" + str(config))
    assert ("lazyValues/shadowed: the config file declares it, and its definition replaces "
            "the one made through the API") in weftd.process.stderr()
    assert client.resolve_lazy_value("shadowed").value == "config"
    assert client.resolve_lazy_value("from_config").value == "v2"


def test_bad_store_files_stop_weftd_naming_the_file_and_what_to_do(weftd, tmp_path):
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"j" * 8192)
    p = refused("--store=sqlite:" + str(junk))
    assert p.returncode != 0
    assert "the task store %s is damaged" % junk in p.stderr, p.stderr
    assert "restore it from a backup" in p.stderr
    assert junk.read_bytes() == b"j" * 8192  # Never reset.

    weftd.start()
    weftd.stop()
    db = sqlite3.connect(weftd.store)
    db.execute("PRAGMA user_version = 99")
    db.close()
    p = refused("--store=sqlite:" + weftd.store)
    assert "the task store %s was written by a newer weftd (schema version 99" % weftd.store \
        in p.stderr, p.stderr
    db = sqlite3.connect(weftd.store)
    db.execute("PRAGMA user_version = 2")
    db.close()

    plain = tmp_path / "plain"
    plain.write_text("a file, not a folder")
    p = refused("--store=sqlite:%s/weft.db" % plain)
    assert p.returncode != 0
    assert "cannot use the task store %s/weft.db" % plain in p.stderr, p.stderr

    weftd.start()
    p = refused("--store=sqlite:" + weftd.store)
    assert p.returncode != 0
    assert "the task store %s is in use by another weftd" % weftd.store in p.stderr, p.stderr


def test_a_backup_of_a_live_store_restores(weftd, tmp_path):
    client = weftd.start()
    done = client.create_task(call("value", value="kept"), labels={"job": "backup"})
    running = client.create_task(call("sleep", duration="60s"))
    wait_to_end(client, done.name)
    copy = tmp_path / "copy.db"
    p = weftd.cli("admin", "backup", str(copy))
    assert p.returncode == 0, p.stderr
    assert "wrote %s (" % copy in p.stdout
    # Restored beside the live one.
    restored = Weftd(str(copy))
    try:
        other = restored.start()
        assert other.get_task(done.name).outcome.value.string_value == "kept"
        assert other.get_task(running.name).resumes == 1
    finally:
        restored.stop()
    client.cancel_task(running.name)


def test_a_backup_of_the_memory_store_is_refused():
    p = Process("weftd", [program("WEFT_WEFTD"), "--listen=127.0.0.1:0"], r"listening on (\S+)")
    try:
        cli = subprocess.run([program("WEFT_CLI"), "--addr=" + p.address, "admin", "backup",
                              "/tmp/never-written.db"], capture_output=True, text=True,
                             timeout=60)
        assert cli.returncode == 2
        assert "FAILED_PRECONDITION" in cli.stderr and "--store=sqlite:PATH" in cli.stderr, \
            cli.stderr
        assert not os.path.exists("/tmp/never-written.db")
    finally:
        p.stop()


@pytest.fixture
def small_disk(tmp_path):
    """A 3 MiB tmpfs of the test's own (root only)."""
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mount = tmp_path / "disk"
    mount.mkdir()
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(mount)]).returncode:
        pytest.skip("this machine does not let the test mount a tmpfs")
    yield mount
    subprocess.run(["umount", "-l", str(mount)])


def test_a_full_disk_refuses_new_tasks_clearly_and_passes(small_disk):
    weftd = Weftd(str(small_disk / "weft.db"))
    client = weftd.start()
    try:
        first = client.create_task(call("value", value="before"))
        wait_to_end(client, first.name)
        # Fill the disk but for a little.
        filler = small_disk / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        labels = {"k%02d" % i: "v" * 255 for i in range(64)}
        refusal = None
        for _ in range(200):
            try:
                client.create_task(call("value", value="x"), labels=labels)
            except WeftError as e:
                refusal = e
                break
        assert refusal is not None, "the disk never filled"
        assert refusal.code.name == "UNAVAILABLE", refusal
        assert refusal.reason == "TASK_STORE_UNAVAILABLE", refusal
        assert "full" in str(refusal), refusal
        # A lazy value is refused the same way, and not kept.
        with pytest.raises(WeftError) as lazy_refused:
            client.create_lazy_value("big", call("value", value="x" * 200_000))
        assert lazy_refused.value.reason == "TASK_STORE_UNAVAILABLE", lazy_refused.value
        assert "could not be stored, so it was not created" in str(lazy_refused.value)
        with pytest.raises(WeftError) as absent:
            client.get_lazy_value("big")
        assert absent.value.reason == "LAZY_VALUE_NOT_FOUND"
        # Reads go on.
        assert client.get_task(first.name).outcome.value.string_value == "before"
        assert list(client.list_tasks())
        # Space comes back: so do writes.
        filler.unlink()
        again = client.create_task(call("value", value="after"))
        assert wait_to_end(client, again.name).state == task_pb2.TASK_STATE_SUCCEEDED
    finally:
        weftd.stop()
    # Nothing half-written: the store opens, with what was acknowledged.
    client = weftd.start()
    assert client.get_task(again.name).outcome.value.string_value == "after"
    weftd.stop()


def test_parallel_plans_resume_too(weftd, upstream):
    client = weftd.start("--shutdown_grace=0.2s")
    task = client.create_task(parallel(
        call("http", id="p1-fast", url=upstream.url("p1-fast")),
        call("http", id="p1-slow", url=upstream.url("p1-slow", delay_ms=3000))))
    wait_for(lambda: "p1-fast" in journaled_leaves(weftd.store), what="the fast leaf's end")
    weftd.stop()
    client = weftd.start()
    done = wait_to_end(client, task.name)
    assert done.state == task_pb2.TASK_STATE_SUCCEEDED, done
    fast, slow = done.outcome.children
    assert fast.recovered and slow.ran_again
    calls = upstream.calls()
    assert calls["p1-fast"] == 1 and calls["p1-slow"] == 2
