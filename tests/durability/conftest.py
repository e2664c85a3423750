"""What the durability tests share: weftd on an SQLite store in the test's
own folder (or, for the crash test with WEFT_DURABILITY_POSTGRES set, a new
database on the PostgreSQL server libpq's PG* variables name, as
pg_virtualenv sets them), started and stopped (SIGTERM) or killed (SIGKILL)
as the test says, and the HTTP fixture, which counts the calls that carry
each key=.

The programs are $WEFT_WEFTD, $WEFT_FIXTURE and $WEFT_CLI (the weft CLI);
the Python client and its harness come from clients/python.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Optional

import pytest

from harness import Process, wait_until_serving
from weft.v1 import outcome_pb2
from weft_client import Client


def program(variable: str) -> str:
    path = os.environ.get(variable)
    if not path:
        raise RuntimeError("%s is not set (ctest sets it to the program built)" % variable)
    return path


class Upstream:
    """The HTTP fixture: a URL whose calls it counts by key."""

    def __init__(self, address: str) -> None:
        self.address = address

    def url(self, key: str, delay_ms: int = 0) -> str:
        return "http://%s/work?key=%s&delay=%d" % (self.address, key, delay_ms)

    def calls(self) -> dict[str, int]:
        with urllib.request.urlopen("http://%s/fixture/calls" % self.address, timeout=30) as r:
            return json.load(r)


@pytest.fixture(scope="session")
def upstream() -> Iterator[Upstream]:
    fixture = Process("http_fixture", [program("WEFT_FIXTURE"), "--listen=127.0.0.1:0"],
                      r"http fixture listening on http://(\S+)")
    yield Upstream(fixture.address)
    fixture.stop()


def is_postgres(store: str) -> bool:
    return store.startswith(("postgres://", "postgresql://"))


def new_store(tmp_path) -> str:
    """An SQLite file in the test's folder, or with WEFT_DURABILITY_POSTGRES
    a new PostgreSQL database (a postgresql:// URI)."""
    if not os.environ.get("WEFT_DURABILITY_POSTGRES"):
        return str(tmp_path / "weft.db")
    name = "weft_%s" % os.urandom(6).hex()
    subprocess.run(["createdb", name], check=True, capture_output=True, timeout=60)
    return "postgresql:///" + name


class Weftd:
    """One weftd on `store` (a path: SQLite; a postgres:// URI); a new one
    each start, on the same store."""

    def __init__(self, store: str, *args: str) -> None:
        self.store = store
        self.args = list(args)
        self.process: Optional[Process] = None
        self.client: Optional[Client] = None

    def start(self, *more: str) -> Client:
        self._close_client()
        self.process = Process("weftd", [program("WEFT_WEFTD"), "--listen=127.0.0.1:0",
                                         "--store=" + (self.store if is_postgres(self.store)
                                                       else "sqlite:" + self.store),
                                         "--http_allow=127.0.0.1", *self.args, *more],
                               r"listening on (\S+)")
        self.client = Client(self.process.address, timeout=60)
        wait_until_serving(self.client)
        return self.client

    def _close_client(self) -> None:
        # First: weftd's shutdown waits (up to 5 s) for a client that stays
        # connected.
        if self.client is not None:
            self.client.close()
        self.client = None

    def stop(self) -> str:
        """SIGTERM; what it logged."""
        assert self.process is not None
        self._close_client()
        self.process.stop()
        return self.process.stderr(limit=None)

    def kill(self) -> str:
        """SIGKILL; what it had logged. The client stays open (calls on it
        fail) until the next start."""
        assert self.process is not None
        self.process.kill()
        return self.process.stderr(limit=None)

    def cli(self, *args: str) -> subprocess.CompletedProcess:
        assert self.process is not None
        return subprocess.run([program("WEFT_CLI"), "--addr=" + self.process.address, *args],
                              capture_output=True, text=True, timeout=120)


@pytest.fixture
def weftd(tmp_path) -> Iterator[Weftd]:
    server = Weftd(str(tmp_path / "weft.db"))
    yield server
    if server.client is not None:
        server.stop()


def refused(*args: str) -> subprocess.CompletedProcess:
    """weftd started with `args`, expected to exit at once."""
    return subprocess.run([program("WEFT_WEFTD"), "--listen=127.0.0.1:0", *args],
                          capture_output=True, text=True, timeout=120)


def journaled_leaves(store: str) -> set[str]:
    """The ids of the leaves whose end the store's node journal holds (those
    of running tasks: a task's end drops its journal)."""
    if is_postgres(store):
        out = subprocess.run(
            ["psql", "-At", store, "-c",
             "SELECT encode(outcome, 'hex') FROM weft_task_nodes WHERE outcome IS NOT NULL"],
            check=True, capture_output=True, text=True, timeout=60).stdout
        rows = [(bytes.fromhex(line),) for line in out.split()]
    else:
        db = sqlite3.connect(store)
        try:
            rows = db.execute(
                "SELECT outcome FROM task_nodes WHERE outcome IS NOT NULL").fetchall()
        finally:
            db.close()
    ids = set()
    for (blob,) in rows:
        outcome = outcome_pb2.NodeOutcome()
        outcome.ParseFromString(blob)
        ids.add(outcome.id)
    return ids
