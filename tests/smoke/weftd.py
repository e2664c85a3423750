"""Starts a real weftd for the end-to-end tests and stops it."""

import os
import json
import re
import urllib.request
import signal
import subprocess
import time


class Weftd:
    """A weftd process on a free loopback port."""

    def __init__(self, path, *flags, prefix=()):
        """`prefix`: a command weftd runs under, like ("prlimit", "--as=N", "--")."""
        self.proc = subprocess.Popen(
            [*prefix, path, "--listen=127.0.0.1:0", *flags],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace")
        line = self.proc.stdout.readline()
        match = re.fullmatch(r"listening on (\S+)\n", line)
        if not match:
            self.proc.kill()
            raise RuntimeError("weftd did not start: %r %s" % (line, self.proc.stderr.read()))
        self.address = match.group(1)

    def stop(self, sig=signal.SIGTERM, timeout=60):
        """Sends `sig`; returns (exit code, stderr)."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return self.proc.returncode, err

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class HttpFixture:
    """tests/fixture's HTTP server (http_fixture) on a free loopback port."""

    def __init__(self, path):
        self.path = path

    def __enter__(self):
        self.proc = subprocess.Popen([self.path, "--listen=127.0.0.1:0"],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.address = line.strip().rsplit("//", 1)[-1]
        if not self.address.startswith("127.0.0.1:"):
            self.proc.kill()
            raise RuntimeError("http_fixture did not start: %r" % line)
        return self

    def __exit__(self, *exc):
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()

    def url(self, path_and_query):
        return "http://" + self.address + path_and_query

    def stats(self):
        """The fixture's counters (GET /fixture/stats), never through a proxy."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url("/fixture/stats"), timeout=30) as r:
            return json.loads(r.read())


def buf_curl(buf, address, *args, stdin=None):
    """Runs `buf curl` against `address`; returns the CompletedProcess."""
    cmd = [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
    cmd = [c.replace("{addr}", address) for c in cmd]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)


TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")


# Fields whose values are measured times, different in every run.
MEASURED = {"lastLoadDuration", "uptime"}


def normalize(value):
    """Replaces timestamps and measured durations, so outcomes of different
    runs compare equal."""
    if isinstance(value, dict):
        return {k: "<measured>" if k in MEASURED else normalize(v) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v) for v in value]
    if isinstance(value, str) and TIME.match(value):
        return "<time>"
    return value


def assemble(node):
    """A node's value from an outcome in JSON: its own, or for a composite of
    a full outcome built from its children's (as weft::api::AssembleValue)."""
    if node.get("state") != "NODE_STATE_SUCCEEDED":
        return None
    if "value" in node:
        return node["value"]
    children = node.get("children", [])
    kind = node.get("kind")
    if kind == "NODE_KIND_OFFLOAD":
        return assemble(children[0])
    if kind == "NODE_KIND_RACE":
        for i, c in enumerate(children):
            if c.get("id", "children[%d]" % i) == node.get("winner"):
                return assemble(c)
        return None
    if kind == "NODE_KIND_SEQUENCE":
        return [assemble(c) for c in children]
    settled = node.get("join") == "JOIN_ALL_SETTLED"
    entries = []
    for c in children:
        if settled:
            entry = {"state": c["state"]}
            if c["state"] == "NODE_STATE_SUCCEEDED":
                entry["value"] = assemble(c)
            else:
                entry["error"] = {"code": c["error"]["code"], "message": c["error"]["message"]}
        elif c.get("state") == "NODE_STATE_SUCCEEDED":
            entry = assemble(c)
        else:
            continue
        entries.append((c.get("id"), entry))
    if children and all(c.get("id") for c in children):
        return dict(entries)
    return [e for _, e in entries]
