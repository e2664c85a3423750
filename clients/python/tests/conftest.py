"""What the tests share: a weftd and the HTTP fixture, a Client, unique names.

With WEFT_ADDR set (host:port) the tests use that weftd, and WEFT_UPSTREAM
(host:port) as the HTTP fixture it may call, as in the compose integration;
the tests that call http are skipped without it; WEFT_CLIENT_TLS_CA,
WEFT_CLIENT_TLS_CERT, WEFT_CLIENT_TLS_KEY and WEFT_TOKEN, as the weft CLI
reads them, say how to reach it (the compose file's weftd takes mutual TLS
only). Otherwise they start
$WEFT_WEFTD and $WEFT_FIXTURE on free loopback ports and stop both with
SIGTERM at the end, each of which must then exit 0.

Every name a test makes (labels, request ids, lazy value ids, fail_first
keys) is unique, so reruns against one weftd do not collide, and whatever a
test creates is removed after it, whether it passed or not: its tasks (the
`tasks` fixture) cancelled if need be and deleted, its lazy value
(`lazy_value_id`) deleted.
"""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable, Iterator
from typing import Any, Optional

import pytest

from harness import Process, Tasks, wait_until_serving
from weft_client import Client, WeftError


def _program(variable: str) -> str:
    path = os.environ.get(variable)
    if not path:
        raise RuntimeError("%s is not set: set WEFT_WEFTD and WEFT_FIXTURE to the programs "
                           "to start, or WEFT_ADDR to a running weftd" % variable)
    return path


class Server:
    """Where weftd listens, the HTTP fixture it may call (None if none), and
    the Client arguments that reach it (TLS files, a token)."""

    def __init__(self, address: str, upstream: Optional[str],
                 credentials: Optional[dict[str, str]] = None) -> None:
        self.address = address
        self.upstream = upstream
        self.credentials = credentials or {}

    def connect(self, address: Optional[str] = None, **kwargs: Any) -> Client:
        """A Client of this weftd (or of `address`, a proxy in front of it)."""
        return Client(address or self.address, timeout=60, **self.credentials, **kwargs)


def _credentials_from_env() -> dict[str, str]:
    """The CLI's variables, as Client arguments."""
    names = {"WEFT_CLIENT_TLS_CA": "tls_ca", "WEFT_CLIENT_TLS_CERT": "tls_cert",
             "WEFT_CLIENT_TLS_KEY": "tls_key", "WEFT_TOKEN": "token"}
    return {arg: os.environ[var] for var, arg in names.items() if os.environ.get(var)}


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    if os.environ.get("WEFT_ADDR"):
        yield Server(os.environ["WEFT_ADDR"], os.environ.get("WEFT_UPSTREAM") or None,
                     _credentials_from_env())
        return
    fixture = Process("http_fixture", [_program("WEFT_FIXTURE"), "--listen=127.0.0.1:0"],
                      r"http fixture listening on http://(\S+)")
    try:
        weftd = Process("weftd", [_program("WEFT_WEFTD"), "--listen=127.0.0.1:0",
                                  "--http_allow=127.0.0.1"], r"listening on (\S+)")
    except BaseException:
        fixture.stop()
        raise
    try:
        yield Server(weftd.address, fixture.address)
    finally:
        try:
            weftd.stop()
        finally:
            fixture.stop()


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[Client]:
    """A Client of the weftd under test; each call may take a minute."""
    with server.connect() as c:
        wait_until_serving(c)
        yield c


@pytest.fixture
def unique() -> str:
    """A name no other test, or run, uses: a letter and 12 hex digits."""
    return "t" + uuid.uuid4().hex[:12]


@pytest.fixture
def upstream_url(server: Server) -> Callable[[str], str]:
    """The HTTP fixture's URL of a path and query; skips the test when
    WEFT_ADDR is set without WEFT_UPSTREAM."""
    if server.upstream is None:
        pytest.skip("WEFT_UPSTREAM (the HTTP fixture weftd may call) is not set")
    return lambda path: "http://%s%s" % (server.upstream, path)


@pytest.fixture
def tasks(client: Client) -> Iterator[Tasks]:
    """Creates tasks (tasks.create(plan, labels=...), as client.create_task)
    that are cancelled if still running, then deleted, after the test."""
    made = Tasks(client)
    yield made
    made.cleanup()


@pytest.fixture
def lazy_value_id(client: Client, unique: str) -> Iterator[str]:
    """A unique lazy value id, its lazy value deleted after the test."""
    yield "daily-stats-" + unique
    try:
        client.delete_lazy_value("daily-stats-" + unique)
    except WeftError as e:
        if e.reason != "LAZY_VALUE_NOT_FOUND":
            raise


class DroppingProxy:
    """A TCP proxy on a free loopback port to `target` (host:port) whose
    drop() cuts every connection it carries, as a network failure does."""

    def __init__(self, target: str) -> None:
        host, port = target.rsplit(":", 1)
        self._target = (host.strip("[]"), int(port))
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.address = "127.0.0.1:%d" % self._listener.getsockname()[1]
        self.connections = 0
        self._open: list[socket.socket] = []
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._accept, daemon=True)]
        self._threads[0].start()

    def _accept(self) -> None:
        while True:
            try:
                downstream, _ = self._listener.accept()
            except OSError:
                return  # close()
            upstream = socket.create_connection(self._target)
            with self._lock:
                self.connections += 1
                self._open += [downstream, upstream]
                for src, dst in ((downstream, upstream), (upstream, downstream)):
                    thread = threading.Thread(target=self._pipe, args=(src, dst), daemon=True)
                    thread.start()
                    self._threads.append(thread)

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # drop()

    def drop(self) -> None:
        """Cuts every open connection (both ends see it end)."""
        with self._lock:
            sockets, self._open = self._open, []
        for s in sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass  # Already ended.
            s.close()

    def close(self) -> None:
        """Stops listening, cuts every connection and waits for its threads."""
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        self._threads[0].join(timeout=10)
        self.drop()
        for thread in self._threads[1:]:
            thread.join(timeout=10)


@pytest.fixture
def dropping_proxy(server: Server) -> Iterator[DroppingProxy]:
    """A DroppingProxy to weftd."""
    proxy = DroppingProxy(server.address)
    yield proxy
    proxy.close()
