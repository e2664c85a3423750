"""Replicas: two weftds on one PostgreSQL database (--replicas), end to end.
Any replica reads every replica's tasks, and cancels, waits on, watches
and deletes them (the owner cancels; waits and watches follow the database's
NOTIFY); lazy values made, reset and deleted on one are seen by the other's
next resolve; a request_id names one task of its
principal across replicas; a killed replica's tasks finish on the other,
resumed from the journal (a journaled leaf is not called again); a replica
paused past its lease stops when it wakes, its tasks adopted meanwhile.

Run by the ctest durability_postgres (WEFT_DURABILITY_POSTGRES, under
pg_virtualenv); skipped otherwise."""

from __future__ import annotations

import concurrent.futures
import hashlib
import json
import os
import signal
import threading
import time

import pytest

from conftest import Weftd, journaled_leaves, new_store
from weft.v1 import task_pb2
from weft_client import Client, WeftError, call, is_terminal, sequence

pytestmark = pytest.mark.skipif(not os.environ.get("WEFT_DURABILITY_POSTGRES"),
                                reason="needs PostgreSQL (WEFT_DURABILITY_POSTGRES)")

LEASE = "3s"


def wait_for(condition, timeout: float = 90, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("%s did not hold within %gs" % (what, timeout))
        time.sleep(0.05)


@pytest.fixture
def replicas(tmp_path):
    store = new_store(tmp_path)
    started = [Weftd(store, "--replicas", "--replica_id=" + name, "--lease_duration=" + LEASE,
                     "--shutdown_grace=0.5s")
               for name in ("a", "b")]
    yield started
    for weftd in started:
        if weftd.client is not None and weftd.process is not None \
                and weftd.process._proc.poll() is None:
            weftd.stop()


def test_any_replica_reads_every_task_and_a_killed_ones_finish_on_another(replicas, upstream):
    a, b = replicas
    ca, cb = a.start(), b.start()
    assert 'as replica "a" (generation ' in a.process.stderr(), a.process.stderr()
    task = ca.create_task(sequence(
        call("http", id="r1-charge", url=upstream.url("r1-charge")),
        call("sleep", id="r1-wait", duration="3s"),
        call("http", id="r1-mail", url=upstream.url("r1-mail"))))
    # The other replica reads it, and lists it.
    seen = cb.get_task(task.name)
    assert seen.state in (task_pb2.TASK_STATE_QUEUED, task_pb2.TASK_STATE_RUNNING), seen
    assert task.name in [t.name for t in cb.list_tasks()]
    # A wait through b, from before a dies until the task ends on b.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        waited = pool.submit(lambda: cb.wait_task(task.name, wait=120, timeout=150))
        wait_for(lambda: "r1-charge" in journaled_leaves(a.store),
                 what="the charge in the journal")
        a.kill()
        # b adopts it once a's lease has ended, and runs it to its end.
        assert waited.result().state == task_pb2.TASK_STATE_SUCCEEDED
    done = cb.get_task(task.name)
    assert done.state == task_pb2.TASK_STATE_SUCCEEDED, done
    assert done.resumes == 1
    charge, wait, mail = done.outcome.children
    assert charge.recovered and not charge.ran_again
    assert wait.ran_again
    calls = upstream.calls()
    assert calls["r1-charge"] == 1 and calls["r1-mail"] == 1
    assert "adopted 1 task(s) of replicas whose lease ended: 0 finished, 0 queued and " \
           "1 running (resumed)" in b.process.stderr(), b.process.stderr()


def test_cancel_wait_watch_and_delete_work_through_any_replica(replicas):
    a, b = replicas
    ca, cb = a.start(), b.start()
    task = ca.create_task(call("sleep", id="long", duration="120s"))
    wait_for(lambda: cb.get_task(task.name).state == task_pb2.TASK_STATE_RUNNING,
             what="the task running, as b reads it")
    # Not finished: not deleted, wherever it is asked.
    with pytest.raises(WeftError) as refused:
        cb.delete_task(task.name)
    assert refused.value.reason == "TASK_NOT_FINISHED", refused.value
    watching = threading.Event()

    def watch() -> list:
        states = []
        for event in cb.watch_task(task.name, timeout=90):
            states.append(event.state)
            watching.set()
        return states

    with concurrent.futures.ThreadPoolExecutor(2) as pool:
        watched = pool.submit(watch)
        waited = pool.submit(lambda: cb.wait_task(task.name, wait=90, timeout=120))
        # Once the watch has seen it running (else it may first see it
        # cancelled), b asks; a, which runs it, cancels it.
        assert watching.wait(60), "the watch sent no first event"
        asked = cb.cancel_task(task.name)
        assert asked.state in (task_pb2.TASK_STATE_RUNNING, task_pb2.TASK_STATE_CANCELLED), asked
        assert waited.result().state == task_pb2.TASK_STATE_CANCELLED
        states = watched.result()
    assert states[0] == task_pb2.TASK_STATE_RUNNING and states[-1] == task_pb2.TASK_STATE_CANCELLED, states
    ended = ca.get_task(task.name)
    assert ended.state == task_pb2.TASK_STATE_CANCELLED, ended
    assert "cancelled by CancelTask" in ended.outcome.error.message, ended.outcome
    # Finished now: b deletes it, and neither has it.
    cb.delete_task(task.name)
    for client in (ca, cb):
        with pytest.raises(WeftError) as gone:
            client.get_task(task.name)
        assert gone.value.code.name == "NOT_FOUND", gone.value


def test_lazy_values_and_their_resets_are_shared_by_every_replica(replicas, upstream):
    a, b = replicas
    ca, cb = a.start(), b.start()
    ca.create_lazy_value("rates", call("http", id="rates", url=upstream.url("rates")))
    # b resolves it at once (a resolve reads the value's row first), and
    # each replica computes and caches its own copy.
    assert not cb.resolve_lazy_value("rates").cache_hit
    assert cb.resolve_lazy_value("rates").cache_hit
    assert not ca.resolve_lazy_value("rates").cache_hit
    assert upstream.calls()["rates"] == 2
    # A reset on a is seen by b's next resolve, and one on b by a's.
    ca.reset_lazy_value("rates")
    after = cb.resolve_lazy_value("rates")
    assert not after.cache_hit and after.generation == 1, after
    assert cb.reset_lazy_value("rates").generation == 2
    assert not ca.resolve_lazy_value("rates").cache_hit
    assert upstream.calls()["rates"] == 4
    # Another definition under its id is refused on either replica.
    with pytest.raises(WeftError) as taken:
        cb.create_lazy_value("rates", call("value", value=1))
    assert taken.value.code.name == "ALREADY_EXISTS", taken.value
    # Made on b, listed on a within a poll (the notice, or the poll).
    cb.create_lazy_value("quotes", call("value", value={"eur": 1.1}))
    wait_for(lambda: "lazyValues/quotes" in [v.name for v in ca.list_lazy_values()],
             what="quotes listed on a")
    # Deleted on b: gone from a's next resolve.
    cb.delete_lazy_value("rates")
    with pytest.raises(WeftError) as gone:
        ca.resolve_lazy_value("rates")
    assert gone.value.code.name == "NOT_FOUND", gone.value
    assert ca.resolve_lazy_value("quotes").value == {"eur": 1.1}


def test_a_principals_task_quotas_count_across_replicas(replicas, tmp_path):
    tokens = tmp_path / "tokens.json"
    tokens.write_text(json.dumps({"principals": [
        {"name": "alice", "role": "user",
         "tokenSha256": hashlib.sha256(b"alice-secret").hexdigest()}]}))
    quota = ("--auth_tokens=" + str(tokens), "--max_running_tasks_per_principal=1",
             "--max_queued_tasks_per_principal=1")
    a, b = replicas
    a.start(*quota)
    b.start(*quota)
    ca = Client(a.process.address, timeout=60, token="alice-secret")
    cb = Client(b.process.address, timeout=60, token="alice-secret")
    try:
        first = ca.create_task(call("sleep", id="long", duration="120s"))
        # Running as the database has it (b counts her tasks there).
        wait_for(lambda: cb.get_task(first.name).state == task_pb2.TASK_STATE_RUNNING,
                 what="her first task running, as b reads it")
        # Her running slot is taken on a: on b her next task waits...
        second = cb.create_task(call("value", value="done"))
        assert second.state == task_pb2.TASK_STATE_QUEUED, second
        # ...and with it her queue is full, on either replica.
        for client in (ca, cb):
            with pytest.raises(WeftError) as refused:
                client.create_task(call("value", value="more"))
            assert refused.value.reason == "PRINCIPAL_QUOTA", refused.value
        # Her task on a ends: b's poll finds the slot free and runs hers.
        ca.cancel_task(first.name)
        assert cb.wait_task(second.name, wait=60, timeout=90).state == \
            task_pb2.TASK_STATE_SUCCEEDED
    finally:
        ca.close()
        cb.close()


def test_a_request_id_names_one_task_across_replicas(replicas):
    a, b = replicas
    ca, cb = a.start(), b.start()
    first = ca.create_task(call("value", value="once"), request_id="report-7")
    again = cb.create_task(call("value", value="once"), request_id="report-7")
    assert again.name == first.name
    with pytest.raises(WeftError) as refused:
        cb.create_task(call("value", value="other"), request_id="report-7")
    assert refused.value.reason == "REQUEST_ID_REUSED", refused.value
    assert first.name in refused.value.message
    # A finished task is waited on, and deleted, from any replica.
    assert is_terminal(ca.wait_task(first.name, wait=30, timeout=60))
    assert cb.wait_task(first.name, wait=1, timeout=30).state == task_pb2.TASK_STATE_SUCCEEDED
    cb.delete_task(first.name)
    for client in (ca, cb):
        with pytest.raises(WeftError) as gone:
            client.get_task(first.name)
        assert gone.value.reason == "TASK_NOT_FOUND", gone.value


def test_a_replica_paused_past_its_lease_stops_when_it_wakes(replicas, upstream):
    a, b = replicas
    ca, cb = a.start(), b.start()
    # The sleep ends while a is paused: awake, a must not start p1-after
    # (its lease ran out by its own clock, whichever of its threads runs
    # first), which b runs once it has adopted the task. Had the sleep ended
    # before the pause, p1-after is journaled and not run again.
    task = ca.create_task(sequence(
        call("sleep", id="p1-wait", duration="2s"),
        call("http", id="p1-after", url=upstream.url("p1-after")),
        call("sleep", id="p1-rest", duration="8s")))
    wait_for(lambda: ca.get_task(task.name).state == task_pb2.TASK_STATE_RUNNING,
             what="the task running on a")
    a.process.send(signal.SIGSTOP)
    try:
        wait_for(lambda: "adopted 1 task(s)" in b.process.stderr(), what="b's adoption")
    finally:
        a.process.send(signal.SIGCONT)
    # Awake, a finds its lease gone and stops before running anything more.
    assert a.process.wait_exit(timeout=60) == 3
    assert "this replica lost its lease" in a.process.stderr(), a.process.stderr()
    done = cb.wait_task(task.name, wait=60, timeout=90)
    assert is_terminal(done)
    assert cb.get_task(task.name).state == task_pb2.TASK_STATE_SUCCEEDED
    assert upstream.calls()["p1-after"] == 1
