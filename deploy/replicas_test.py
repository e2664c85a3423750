"""The compose file's replicas, end to end (its `replicas-integration`
service; `make compose-test` runs it after the single weftd's suites).

Three weftd replicas share one PostgreSQL behind nginx (`balancer`). Tasks
are created through the balancer, read, waited on and cancelled through
each replica directly; lazy values made on one are resolved on every one;
then a replica that owns running tasks is killed (`docker kill`, through the
Docker engine's socket mounted here) and every task finishes on another:
none lost, no journaled leaf called twice. The killed replica is started
again at the end (it rejoins under its name), and every key and id carries
a tag of the run, so the suite can run again against the same services.

Environment: WEFT_BALANCER, WEFT_REPLICA_ADDRS (name=host:port, comma
separated), WEFT_UPSTREAM (the HTTP fixture), WEFT_DATABASE (a libpq URI
psql reads the journal through; the password in PGPASSWORD)."""

from __future__ import annotations

import concurrent.futures
import http.client
import json
import os
import socket
import subprocess
import time
import urllib.parse
import urllib.request

import pytest

from weft.v1 import outcome_pb2, task_pb2
from weft_client import Client, WeftError, call, sequence

# The replica the kill test kills.
VICTIM = "weftd-2"
# This run's tag, in every fixture key and id it makes.
RUN = os.urandom(3).hex()


def env(name: str) -> str:
    value = os.environ.get(name)
    if not value:
        raise RuntimeError("%s is not set (docker-compose.yml sets it)" % name)
    return value


def wait_for(condition, timeout: float = 120, what: str = "the condition") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("%s did not hold within %gs" % (what, timeout))
        time.sleep(0.1)


class DockerEngine:
    """The few calls of the Docker Engine API this suite makes, over the
    engine's unix socket (the docker CLI is not in the image)."""

    class _Connection(http.client.HTTPConnection):
        def __init__(self, path: str) -> None:
            super().__init__("localhost", timeout=60)
            self._path = path

        def connect(self) -> None:
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.settimeout(60)
            self.sock.connect(self._path)

    def __init__(self, path: str = "/var/run/docker.sock") -> None:
        self._path = path

    def request(self, method: str, path: str) -> object:
        connection = self._Connection(self._path)
        try:
            connection.request(method, path)
            response = connection.getresponse()
            body = response.read()
        finally:
            connection.close()
        if response.status >= 300:
            raise RuntimeError("Docker engine: %s %s answered %d: %s"
                               % (method, path, response.status, body[:300]))
        return json.loads(body) if body else None

    def service_container(self, service: str) -> str:
        """The id of this compose project's container of `service` (the
        project is read off this suite's own container)."""
        me = self.request("GET", "/containers/%s/json" % socket.gethostname())
        project = me["Config"]["Labels"]["com.docker.compose.project"]
        filters = json.dumps({"label": ["com.docker.compose.project=" + project,
                                        "com.docker.compose.service=" + service]})
        found = self.request("GET", "/containers/json?filters=" + urllib.parse.quote(filters))
        if len(found) != 1:
            raise RuntimeError("expected one running container of %s, found %d"
                               % (service, len(found)))
        return found[0]["Id"]

    def kill(self, container: str) -> None:
        """SIGKILL, and returns once the container has stopped."""
        self.request("POST", "/containers/%s/kill?signal=KILL" % container)
        self.request("POST", "/containers/%s/wait?condition=not-running" % container)

    def start(self, container: str) -> None:
        self.request("POST", "/containers/%s/start" % container)


class Upstream:
    """The HTTP fixture: URLs whose calls it counts by key."""

    def __init__(self, address: str) -> None:
        self.address = address

    def url(self, key: str) -> str:
        return "http://%s/work?key=%s" % (self.address, key)

    def calls(self) -> dict[str, int]:
        with urllib.request.urlopen("http://%s/fixture/calls" % self.address, timeout=30) as r:
            return json.load(r)


def journaled_leaves() -> set[str]:
    """The ids of the leaves whose end the database's journal holds (those of
    running tasks: a task's end drops its journal)."""
    out = subprocess.run(
        ["psql", "-At", env("WEFT_DATABASE"), "-c",
         "SELECT encode(outcome, 'hex') FROM weft_task_nodes WHERE outcome IS NOT NULL"],
        check=True, capture_output=True, text=True, timeout=60).stdout
    ids = set()
    for line in out.split():
        outcome = outcome_pb2.NodeOutcome()
        outcome.ParseFromString(bytes.fromhex(line))
        ids.add(outcome.id)
    return ids


def serving(client: Client) -> bool:
    try:
        return client.health(timeout="5s") == "SERVING"
    except WeftError:
        return False


@pytest.fixture(scope="module")
def balancer():
    with Client(env("WEFT_BALANCER"), timeout="60s") as client:
        # Compose starts this suite once the balancer has started, not
        # necessarily once it answers.
        wait_for(lambda: serving(client), what="the balancer serving")
        yield client


@pytest.fixture(scope="module")
def replicas():
    addresses = dict(pair.split("=", 1) for pair in env("WEFT_REPLICA_ADDRS").split(","))
    clients = {name: Client(address, timeout="60s") for name, address in addresses.items()}
    assert VICTIM in clients, clients
    for name, client in clients.items():
        wait_for(lambda: serving(client), what=name + " serving")
    yield clients
    for client in clients.values():
        client.close()


@pytest.fixture(scope="module")
def upstream():
    return Upstream(env("WEFT_UPSTREAM"))


def test_tasks_made_through_the_balancer_are_read_waited_on_and_cancelled_through_each_replica(
        balancer, replicas):
    labels = {"run": RUN, "case": "cancel"}
    tasks = [balancer.create_task(call("sleep", id="long", duration="600s"), labels=labels)
             for _ in range(2 * len(replicas))]
    names = [t.name for t in tasks]
    # Every replica reads and lists every task, whichever replica owns it,
    # and sees each running (its owner has written so).
    for client in replicas.values():
        for name in names:
            wait_for(lambda: client.get_task(name).state == task_pb2.TASK_STATE_RUNNING,
                     what=name + " running")
        listed = {t.name for t in client.list_tasks(labels=labels)}
        assert set(names) <= listed, (names, listed)
    # Each replica cancels two of them, and the next replica waits on each.
    order = list(replicas.values())
    with concurrent.futures.ThreadPoolExecutor(len(names)) as pool:
        waits = [pool.submit(order[(i + 1) % len(order)].wait_task, name, wait="90s",
                             timeout="120s")
                 for i, name in enumerate(names)]
        for i, name in enumerate(names):
            order[i % len(order)].cancel_task(name)
        for name, waited in zip(names, waits):
            ended = waited.result()
            assert ended.state == task_pb2.TASK_STATE_CANCELLED, (name, ended)
    for name in names:
        ended = balancer.get_task(name)
        assert ended.state == task_pb2.TASK_STATE_CANCELLED, ended
        assert "cancelled by CancelTask" in ended.outcome.error.message, ended.outcome
        balancer.delete_task(name)
    for client in replicas.values():
        assert not {t.name for t in client.list_tasks(labels=labels)} & set(names)


def test_a_lazy_value_made_on_one_replica_is_shared_and_reset_by_all(replicas, upstream):
    first, *others = replicas.values()
    value, key = "rates_" + RUN, "rates-" + RUN
    first.create_lazy_value(value, call("http", id="rates", url=upstream.url(key)))
    try:
        # Each replica computes and caches its own copy.
        for client in replicas.values():
            assert not client.resolve_lazy_value(value).cache_hit
            assert client.resolve_lazy_value(value).cache_hit
        assert upstream.calls()[key] == len(replicas)
        # A reset through the last replica is seen by every replica's next
        # resolve.
        others[-1].reset_lazy_value(value)
        for client in replicas.values():
            assert not client.resolve_lazy_value(value).cache_hit
        assert upstream.calls()[key] == 2 * len(replicas)
    finally:
        first.delete_lazy_value(value)


def test_a_killed_replicas_running_tasks_finish_on_another_none_lost_no_leaf_twice(
        balancer, replicas, upstream):
    def plan(key: str):
        return sequence(call("http", id=key + "-charge", url=upstream.url(key + "-charge")),
                        call("sleep", id=key + "-wait", duration="20s"),
                        call("http", id=key + "-mail", url=upstream.url(key + "-mail")),
                        id=key)

    labels = {"run": RUN, "case": "kill"}
    keys = ["%s-kill-%d" % (RUN, i) for i in range(9)]
    tasks = {key: balancer.create_task(plan(key), labels=labels) for key in keys}
    # The killed replica surely owns two.
    owned = ["%s-kill-own-%d" % (RUN, i) for i in range(2)]
    for key in owned:
        keys.append(key)
        tasks[key] = replicas[VICTIM].create_task(plan(key), labels=labels)

    def charged(key: str) -> bool:
        return key + "-charge" in journaled
    # Each charge journaled (or its task already ended) before the kill.
    journaled: set[str] = set()

    def all_charged() -> bool:
        journaled.clear()
        journaled.update(journaled_leaves())
        return all(charged(key) or balancer.get_task(tasks[key].name).state
                   not in (task_pb2.TASK_STATE_QUEUED, task_pb2.TASK_STATE_RUNNING)
                   for key in keys)
    wait_for(all_charged, what="every charge in the journal")

    engine = DockerEngine()
    victim = engine.service_container(VICTIM)
    engine.kill(victim)
    killed_at = time.monotonic()
    try:
        survivors = [c for name, c in replicas.items() if name != VICTIM]
        # The killed replica answers no more; the balancer passes calls on.
        with pytest.raises(WeftError) as gone:
            replicas[VICTIM].get_task(tasks[keys[0]].name, timeout="5s")
        assert gone.value.code.name in ("UNAVAILABLE", "DEADLINE_EXCEEDED"), gone.value
        ended = {}
        for i, key in enumerate(keys):
            ended[key] = survivors[i % len(survivors)].wait_task(
                tasks[key].name, wait="180s", timeout="200s")
        print("every task ended %.1f s after the kill" % (time.monotonic() - killed_at))
    finally:
        # Back under its name, for a run after this one.
        engine.start(victim)
    calls = upstream.calls()
    resumed = []
    for key in keys:
        task = ended[key]
        assert task.state == task_pb2.TASK_STATE_SUCCEEDED, (key, task)
        # No journaled leaf called twice; every leaf called.
        assert calls.get(key + "-charge") == 1, (key, calls.get(key + "-charge"))
        assert calls.get(key + "-mail") == 1, (key, calls.get(key + "-mail"))
        if task.resumes:
            resumed.append(key)
            charge = task.outcome.children[0]
            assert charge.recovered and not charge.ran_again, (key, charge)
    # Those the killed replica owned were adopted and resumed.
    assert set(owned) <= set(resumed), resumed
    # None lost: the balancer lists every one.
    listed = {t.name for t in balancer.list_tasks(labels=labels)}
    assert {t.name for t in tasks.values()} <= listed
    # The replica started again rejoins and serves.
    wait_for(lambda: serving(replicas[VICTIM]), what=VICTIM + " serving again")
