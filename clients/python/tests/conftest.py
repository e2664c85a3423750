"""What the tests share: a weftd and the HTTP fixture, a Client, unique names.

With WEFT_ADDR set (host:port) the tests use that weftd, and WEFT_UPSTREAM
(host:port) as the HTTP fixture it may call, as in the compose integration;
the tests that call http are skipped without it. Otherwise they start
$WEFT_WEFTD and $WEFT_FIXTURE on free loopback ports and stop both with
SIGTERM at the end, each of which must then exit 0.

Every name a test makes (labels, lazy value ids, fail_first keys) is unique,
so reruns against one weftd do not collide.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Optional

import pytest

from weft_client import Client, WeftError

# How long a process may take to print where it listens, weftd to answer its
# health check, and a process to exit after SIGTERM (a shared, busy machine).
START_TIMEOUT = 60
STOP_TIMEOUT = 60


class Process:
    """A program that prints where it listens as its first stdout line; its
    output goes to files, so it never blocks on a pipe."""

    def __init__(self, name: str, argv: list[str], first_line: str) -> None:
        self.name = name
        self._out = tempfile.TemporaryFile("w+")
        self._err = tempfile.TemporaryFile("w+")
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._out,
                                      stderr=self._err, text=True)
        self.address = self._wait_for(first_line)

    def _wait_for(self, pattern: str) -> str:
        """The group of `pattern` in the first line, once it is written."""
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            self._out.seek(0)
            line = self._out.readline()
            if line.endswith("\n"):
                match = re.fullmatch(pattern, line.rstrip("\n"))
                if not match:
                    self._proc.kill()
                    raise RuntimeError("%s printed %r first; stderr:\n%s"
                                       % (self.name, line, self.stderr()))
                return match.group(1)
            if self._proc.poll() is not None:
                raise RuntimeError("%s exited with %s; stderr:\n%s"
                                   % (self.name, self._proc.returncode, self.stderr()))
            time.sleep(0.02)
        self._proc.kill()
        raise RuntimeError("%s did not start within %ds" % (self.name, START_TIMEOUT))

    def stderr(self) -> str:
        self._err.seek(0)
        return self._err.read()[-4000:]

    def stop(self) -> None:
        """SIGTERM; AssertionError unless it exits 0 in time."""
        self._proc.send_signal(signal.SIGTERM)
        try:
            code = self._proc.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
            raise AssertionError("%s did not exit within %ds of SIGTERM; stderr:\n%s"
                                 % (self.name, STOP_TIMEOUT, self.stderr()))
        assert code == 0, "%s exited with %s after SIGTERM; stderr:\n%s" % (
            self.name, code, self.stderr())


def _program(variable: str) -> str:
    path = os.environ.get(variable)
    if not path:
        raise RuntimeError("%s is not set: set WEFT_WEFTD and WEFT_FIXTURE to the programs "
                           "to start, or WEFT_ADDR to a running weftd" % variable)
    return path


class Server:
    """Where weftd listens, and the HTTP fixture it may call (None if none)."""

    def __init__(self, address: str, upstream: Optional[str]) -> None:
        self.address = address
        self.upstream = upstream


@pytest.fixture(scope="session")
def server() -> Iterator[Server]:
    if os.environ.get("WEFT_ADDR"):
        yield Server(os.environ["WEFT_ADDR"], os.environ.get("WEFT_UPSTREAM") or None)
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


def _wait_until_serving(client: Client) -> None:
    """Waits for weftd to answer its health check (a compose service may
    still be starting)."""
    deadline = time.monotonic() + START_TIMEOUT
    while True:
        try:
            if client.health(timeout=5) == "SERVING":
                return
        except WeftError:
            if time.monotonic() > deadline:
                raise
        time.sleep(0.2)


@pytest.fixture(scope="session")
def client(server: Server) -> Iterator[Client]:
    """A Client of the weftd under test; each call may take a minute."""
    with Client(server.address, timeout=60) as c:
        _wait_until_serving(c)
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
