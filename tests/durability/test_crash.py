"""Acknowledged work survives kill -9: rounds of mixed load (creates with and
without request_id, repeats, cancels, deletes, gets; sequences and parallels
of http calls to the fixture), each ended by SIGKILL at a random moment,
then a restart on the same store (an SQLite file; a PostgreSQL database with
WEFT_DURABILITY_POSTGRES, as the ctest durability_postgres runs it).

Checked after every restart: every CreateTask and DeleteTask that was
answered holds (the task is there; the deleted one is not). At the end:
every task reaches a terminal state; a repeated request_id still returns
its first task; and no leaf whose end the journal held at a kill was called
again (the fixture counts the calls of each leaf's key).

WEFT_CRASH_ROUNDS (default 24) and WEFT_CRASH_SEED set the rounds and the
seed; the seed is printed, and a failure names it.
"""

from __future__ import annotations

import os
import random
import threading
import time

from conftest import Weftd, journaled_leaves, new_store
from weft_client import WeftError, call, fmt, is_terminal, parallel, sequence

ROUNDS = int(os.environ.get("WEFT_CRASH_ROUNDS", "24"))
LOAD_THREADS = 3


class Ledger:
    """What the server answered, across rounds."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.created: dict[str, object] = {}        # name -> plan
        self.requests: dict[str, tuple[str, object]] = {}  # request_id -> (name, plan)
        self.deleted: set[str] = set()              # answered OK
        self.delete_tried: set[str] = set()         # asked, answered or not
        self.errors: list[str] = []

    def live(self) -> list[str]:
        with self.lock:
            return [n for n in self.created if n not in self.delete_tried]


def make_plan(rng: random.Random, upstream, tag: str):
    """A sequence or a parallel of 2 to 4 http calls; in a sequence, each
    step's URL also carries the status the step before it got ($format), so
    a resumed task reads values the journal kept."""
    n = rng.randint(2, 4)
    urls = [upstream.url("%sn%d" % (tag, j), delay_ms=rng.choice([0, 30, 150, 400]))
            for j in range(n)]
    if rng.random() < 0.5:
        return sequence(*[call("http", id="%sn%d" % (tag, j),
                               url=fmt(urls[j] + "&prev={%sn%d.status}" % (tag, j - 1))
                               if j else urls[j])
                          for j in range(n)])
    return parallel(*[call("http", id="%sn%d" % (tag, j), url=urls[j]) for j in range(n)])


def load(client, upstream, ledger: Ledger, rng: random.Random, tag: str,
         stop: threading.Event) -> None:
    k = 0
    # A few dozen calls a second each: enough to have work in flight at
    # every kill, few enough for the last start to finish it all quickly.
    while not stop.wait(rng.uniform(0.005, 0.03)):
        k += 1
        op = rng.random()
        try:
            if op < 0.55:
                key = "%sk%d" % (tag, k)
                plan = make_plan(rng, upstream, key)
                request_id = key if rng.random() < 0.5 else None
                task = client.create_task(plan, request_id=request_id, timeout=10)
                with ledger.lock:
                    ledger.created[task.name] = plan
                    if request_id:
                        ledger.requests[request_id] = (task.name, plan)
            elif op < 0.65:
                with ledger.lock:
                    candidates = [(r, n, p) for r, (n, p) in ledger.requests.items()
                                  if n not in ledger.delete_tried]
                if candidates:
                    request_id, name, plan = rng.choice(candidates)
                    again = client.create_task(plan, request_id=request_id, timeout=10)
                    if again.name != name:
                        with ledger.lock:
                            ledger.errors.append("request_id %s gave %s, first %s"
                                                 % (request_id, again.name, name))
            elif op < 0.75:
                names = ledger.live()
                if names:
                    client.cancel_task(rng.choice(names), timeout=10)
            elif op < 0.85:
                names = ledger.live()
                if names:
                    name = rng.choice(names)
                    with ledger.lock:
                        ledger.delete_tried.add(name)
                    client.delete_task(name, timeout=10)
                    with ledger.lock:
                        ledger.deleted.add(name)
            else:
                names = ledger.live()
                if names:
                    client.get_task(rng.choice(names), timeout=10)
        except WeftError:
            # Refusals (a running task cannot be deleted), and every call the
            # kill cut off: nothing was promised.
            time.sleep(0.01)
        except Exception as e:  # pylint: disable=broad-except
            with ledger.lock:
                ledger.errors.append("%s: %r" % (tag, e))
            return


def check_promises(client, ledger: Ledger, round_: int) -> None:
    with ledger.lock:
        created = list(ledger.created)
        deleted = set(ledger.deleted)
        tried = set(ledger.delete_tried)
    for name in created:
        if name in deleted:
            try:
                client.get_task(name)
                raise AssertionError("round %d: %s was deleted and came back" % (round_, name))
            except WeftError as e:
                assert e.reason == "TASK_NOT_FOUND", e
        elif name not in tried:
            client.get_task(name)  # Raises if it was lost.


def test_acknowledged_work_survives_kill_9_in_every_round(tmp_path, upstream):
    seed = int(os.environ.get("WEFT_CRASH_SEED", str(int(time.time()))))
    print("WEFT_CRASH_SEED=%d" % seed)
    rng = random.Random(seed)
    store = new_store(tmp_path)
    weftd = Weftd(store, "--max_running_tasks=64")
    ledger = Ledger()
    # Leaf keys whose end the journal held at a kill, with their calls then.
    frozen: dict[str, int] = {}
    for round_ in range(ROUNDS):
        client = weftd.start()
        check_promises(client, ledger, round_)
        stop = threading.Event()
        threads = [threading.Thread(
            target=load, args=(client, upstream, ledger, random.Random(rng.random()),
                               "r%dw%d" % (round_, i), stop))
            for i in range(LOAD_THREADS)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 1.2))
        weftd.kill()
        stop.set()
        for t in threads:
            t.join(timeout=60)
        calls = upstream.calls()
        for key in journaled_leaves(store):
            frozen.setdefault(key, calls.get(key, 0))
        assert not ledger.errors, "seed %d: %s" % (seed, ledger.errors)

    client = weftd.start()
    try:
        check_promises(client, ledger, ROUNDS)
        recovered = ran_again = 0
        for name in ledger.live():
            task = client.wait_task(name, wait=60, timeout=90)
            assert is_terminal(task), "seed %d: %s did not end: %s" % (seed, name, task)
            for leaf in client.get_task(name).outcome.children:
                recovered += leaf.recovered
                ran_again += leaf.ran_again
        for request_id, (name, plan) in list(ledger.requests.items()):
            if name in ledger.delete_tried:
                continue
            again = client.create_task(plan, request_id=request_id)
            assert again.name == name, "seed %d: request_id %s" % (seed, request_id)
        calls = upstream.calls()
        again_called = {key: (n, calls.get(key, 0)) for key, n in frozen.items()
                        if calls.get(key, 0) != n}
        assert not again_called, "seed %d: journaled leaves called again: %s" % (
            seed, again_called)
        print("%d rounds: %d tasks, %d deleted, %d leaves journaled at a kill, %d recovered, "
              "%d ran again" % (ROUNDS, len(ledger.created), len(ledger.deleted), len(frozen),
                                recovered, ran_again))
        # The rounds exercised what they check.
        assert ledger.created and frozen, "seed %d: the load did too little" % seed
    finally:
        weftd.stop()
