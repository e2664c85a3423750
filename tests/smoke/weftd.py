"""What the end-to-end tests share: a real weftd and the HTTP fixture as
processes, `buf curl` and the weft CLI against them, weftd's errors as buf
prints them, and run_tests(), each test file's main.

Used by tests/smoke/*_test.py, tests/hostile/hostile_test.py and
bench/bench.py.

Every process started here is stopped by a signal and its exit code checked:
`with Weftd(...)` (and `with HttpFixture(...)`) sends SIGTERM at the end of the
block and raises AssertionError, with the end of its stderr, unless it exits
0, which weftd does after a clean shutdown. Under AddressSanitizer a leak or
a use-after-free at shutdown changes that code, so the test fails.
"""

import argparse
import base64
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest
import urllib.request

# The command line, as run_tests() parsed it (filled in place, so
# `from weftd import ARGS` sees it).
ARGS = argparse.Namespace()

# The options run_tests() knows; each test file says which it needs.
OPTIONS = {
    "weftd": "the weftd program",
    "weft": "the weft CLI",
    "buf": "buf, for `buf curl` (make tools installs it)",
    "fixture": "the http_fixture program",
    "root": "the repository's root",
    "googleapis": "the folder holding google/rpc/*.proto",
}


def run_tests(*needed, add_arguments=None, setup=None):
    """A test file's main: parses the command line into ARGS (the OPTIONS
    named in `needed` are required; add_arguments(parser) may add more), calls
    setup() if given, then runs the tests of __main__ verbosely and exits with
    unittest's status. Arguments it does not know go to unittest (test names,
    -k PATTERN, -f)."""
    parser = argparse.ArgumentParser()
    for name, text in OPTIONS.items():
        parser.add_argument("--" + name, required=name in needed, help=text)
    if add_arguments:
        add_arguments(parser)
    _, rest = parser.parse_known_args(namespace=ARGS)
    if setup:
        setup()
    unittest.main(module="__main__", argv=[sys.argv[0], *rest], verbosity=2)


# --- processes -----------------------------------------------------------------


def describe_exit(code):
    """An exit code as people say it: "exit code 1", "SIGKILL"."""
    if code is None:
        return "still running"
    if code < 0:
        try:
            return signal.Signals(-code).name
        except ValueError:
            return "signal %d" % -code
    return "exit code %d" % code


# The first line of an AddressSanitizer, LeakSanitizer or UBSan report.
SANITIZER_REPORT = re.compile(r"^==\d+==ERROR: |: runtime error: ")


class _Process:
    """A program that prints where it listens as its first line on stdout.

    Its stderr is read as it comes (self.lines), by a thread, so a chatty
    program never blocks on a full pipe and a failure can quote it."""

    name = "process"

    def _start(self, argv, first_line, env=None):
        """Starts `argv`; returns the match of its first stdout line against
        `first_line` (a regular expression)."""
        self.result = None  # (exit code, stderr) once stopped.
        self.problem = None  # Why stop() fails whatever it expects.
        self.lines = []
        self.proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, errors="replace",
                                     env=env)
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()
        line = self.proc.stdout.readline()
        match = re.fullmatch(first_line, line)
        if not match:
            self._discard("did not start")
            raise RuntimeError("%s did not start (%s): %r\n%s" % (
                self.name, describe_exit(self.proc.returncode), line, self.log()))
        return match

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line)

    def log(self):
        """Its stderr so far."""
        return "".join(self.lines)

    def tail(self, lines=40):
        """The end of its stderr, to quote in a failure: its last `lines`
        lines, or from a sanitizer's first report on (at most 300 lines)."""
        for i, line in enumerate(self.lines):
            if SANITIZER_REPORT.search(line):
                return "".join(self.lines[max(i - 2, 0):i + 300])
        return "".join(self.lines[-lines:])

    def _finish(self):
        self.reader.join(timeout=10)
        self.proc.stdout.close()
        self.proc.stderr.close()
        self.result = (self.proc.returncode, self.log())

    def stop(self, sig=signal.SIGTERM, expect=None, timeout=60):
        """Sends `sig` and waits for the process to exit; returns (exit code,
        stderr). Raises AssertionError, quoting the end of its stderr, unless
        it exits with `expect` (an exit code, or -N for "killed by signal N";
        by default 0 after SIGTERM or SIGINT, -N after any other signal N),
        and also if it had exited before it was sent `sig`, or does not exit
        within `timeout` seconds (then it is killed). Once it has stopped,
        returns the same result again (checked against `expect` again)."""
        sig = signal.Signals(sig)
        if expect is None:
            expect = 0 if sig in (signal.SIGTERM, signal.SIGINT) else -sig
        if self.result is None:
            if self.proc.poll() is not None:
                self._finish()
                self.problem = "had already exited (%s) before it was sent %s" % (
                    describe_exit(self.proc.returncode), sig.name)
            else:
                self.proc.send_signal(sig)
                try:
                    self.proc.wait(timeout=timeout)
                except subprocess.TimeoutExpired:
                    self._discard("did not exit within %gs of %s, and was killed"
                                  % (timeout, sig.name))
                else:
                    self._finish()
                    self.signal = sig
        code, err = self.result
        if self.problem:
            raise AssertionError("%s %s; its stderr ends:\n%s"
                                 % (self.name, self.problem, self.tail()))
        if code != expect:
            raise AssertionError("%s ended with %s after %s, not %s; its stderr ends:\n%s"
                                 % (self.name, describe_exit(code), self.signal.name,
                                    describe_exit(expect), self.tail()))
        return code, err

    def _discard(self, why):
        """Kills it, after a failure; stop() fails from then on, saying `why`."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()
        self._finish()
        self.problem = why

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        """Without an exception: stop() (SIGTERM, then exit 0 or an
        AssertionError), unless the block stopped it already. With one:
        kills it, and shows the end of its stderr if it had exited."""
        if self.result is not None:
            return False
        if exc_type is None:
            self.stop()
            return False
        exited = self.proc.poll()
        self._discard("was killed after a failure")
        if exited is not None:
            sys.stderr.write("\n%s had exited (%s); its stderr ends:\n%s" % (
                self.name, describe_exit(exited), self.tail()))
        return False


class Weftd(_Process):
    """A weftd process on a free loopback port (self.address); see stop()
    and __exit__ for how it ends."""

    name = "weftd"

    def __init__(self, path, *flags, prefix=(), env=None):
        """`prefix`: a command weftd runs under, like ("prlimit", "--as=N", "--")
        (it must exec weftd, so signals reach it); `env`: its environment."""
        match = self._start([*prefix, path, "--listen=127.0.0.1:0", *flags],
                            r"listening on (\S+)\n", env=env)
        self.address = match.group(1)


class HttpFixture(_Process):
    """tests/fixture's HTTP server (http_fixture) on a free loopback port,
    started by `with` (or start()); SIGTERM ends it with exit code 0."""

    name = "http_fixture"

    def __init__(self, path):
        self.path = path

    def start(self):
        match = self._start([self.path, "--listen=127.0.0.1:0"],
                            r"http fixture listening on http://(127\.0\.0\.1:\d+)\n")
        self.address = match.group(1)
        return self

    def __enter__(self):
        return self.start()

    def url(self, path_and_query):
        return "http://" + self.address + path_and_query

    def stats(self):
        """The fixture's counters (GET /fixture/stats), never through a proxy."""
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(self.url("/fixture/stats"), timeout=30) as r:
            return json.loads(r.read())


def wait_for(condition, what, timeout=60, interval=0.05):
    """Waits until condition() is true; AssertionError after `timeout` s."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting for " + what)
        time.sleep(interval)


# --- buf curl and the CLI --------------------------------------------------------


def buf_curl(buf, address, *args, stdin=None):
    """Runs `buf curl` against `address` ("{addr}" in `args` becomes it);
    returns the CompletedProcess."""
    cmd = [buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge", *args]
    cmd = [c.replace("{addr}", address) for c in cmd]
    return subprocess.run(cmd, input=stdin, capture_output=True, text=True, timeout=120)


def json_documents(text):
    """The JSON documents of a stream's output, one after another."""
    decoder = json.JSONDecoder()
    docs, i = [], 0
    text = text.strip()
    while i < len(text):
        doc, end = decoder.raw_decode(text, i)
        docs.append(doc)
        i = end
        while i < len(text) and text[i].isspace():
            i += 1
    return docs


def _varint(data, i):
    n = shift = 0
    while True:
        b = data[i]
        i += 1
        n |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return n, i


def _fields(data):
    """A protobuf message's fields as (number, value) pairs: varints as ints,
    everything else as bytes (python3-protobuf is not always at hand here)."""
    out, i = [], 0
    while i < len(data):
        key, i = _varint(data, i)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(data, i)
        elif wire == 2:
            n, i = _varint(data, i)
            value, i = data[i:i + n], i + n
        elif wire in (1, 5):
            n = 8 if wire == 1 else 4
            value, i = data[i:i + n], i + n
        else:
            raise ValueError("wire type %d" % wire)
        out.append((number, value))
    return out


def _strings(data, names):
    """The string fields `names` (by number) of a message."""
    return {names[n]: v.decode() for n, v in _fields(data) if n in names}


def _error_info(data):
    info = {"reason": "", "domain": "", "metadata": {}}
    for n, v in _fields(data):
        if n in (1, 2):
            info[("reason", "domain")[n - 1]] = v.decode()
        elif n == 3:
            entry = _strings(v, {1: "key", 2: "value"})
            info["metadata"][entry.get("key", "")] = entry.get("value", "")
    return info


def _retry_delay(data):
    duration = dict(_fields(dict(_fields(data)).get(1, b"")))
    return duration.get(1, 0) + duration.get(2, 0) / 1e9


# The google.rpc details weftd sends, decoded (the others stay bytes).
DETAILS = {
    "google.rpc.ErrorInfo": _error_info,
    "google.rpc.ResourceInfo": lambda d: _strings(
        d, {1: "resource_type", 2: "resource_name", 3: "owner", 4: "description"}),
    "google.rpc.BadRequest": lambda d: [
        _strings(v, {1: "field", 2: "description"}) for n, v in _fields(d) if n == 1],
    "google.rpc.RetryInfo": _retry_delay,
}


def weft_error(r, code, reason=None):
    """The error a failed `buf curl` call printed, checked to be one weftd
    made: the call failed with `code` (buf's name: "invalid_argument"), and
    its details hold a google.rpc.ErrorInfo of domain weft, with `reason` if
    given; gRPC's own errors (a client's deadline, an unreachable server)
    carry none. Returns buf's JSON ({"code", "message", "details"}) with the
    details decoded by short type name ("ErrorInfo": {"reason", "domain",
    "metadata"}, "BadRequest": [{"field", "description"}], "ResourceInfo",
    "RetryInfo": seconds)."""
    if r.returncode == 0:
        raise AssertionError("the call succeeded; %s was expected:\n%s" % (code, r.stdout))
    try:
        err = json.loads(r.stdout or r.stderr)
    except ValueError:
        raise AssertionError("buf printed no error JSON:\n%s%s" % (r.stdout, r.stderr))
    if err.get("code") != code:
        raise AssertionError("%s, not %s: %s" % (err.get("code"), code, err))
    decoded = {}
    for d in err.get("details", []):
        value = base64.b64decode(d["value"].replace("-", "+").replace("_", "/")
                                 + "=" * (-len(d["value"]) % 4))
        decode = DETAILS.get(d["type"], lambda v: v)
        decoded[d["type"].rsplit(".", 1)[-1]] = decode(value)
    info = decoded.get("ErrorInfo")
    if not info or info["domain"] != "weft":
        raise AssertionError("no ErrorInfo of domain weft: not weftd's error: %s" % err)
    if reason is not None and info["reason"] != reason:
        raise AssertionError("reason %s, not %s: %s" % (info["reason"], reason, err))
    err["details"] = decoded
    return err


class WeftdTest(unittest.TestCase):
    """A test case against weftd through `buf curl` and the weft CLI (ARGS.buf,
    ARGS.weft). Each method talks to `weftd=` if given (a Weftd), else to
    self.weftd, which setUpClass may start with class_weftd()."""

    weftd = None

    @classmethod
    def class_process(cls, process):
        """Stops `process` (a Weftd or a started HttpFixture) after the class's
        tests, with SIGTERM, its exit code checked; a class cleanup, so it runs
        even if setUpClass fails after this, and processes stop in the
        reverse order of their start."""
        cls.addClassCleanup(process.stop)
        return process

    @classmethod
    def class_weftd(cls, *flags):
        return cls.class_process(Weftd(ARGS.weftd, *flags))

    def weft(self, *args, stdin=None, weftd=None, env=None):
        """Runs the weft CLI against weftd; returns the CompletedProcess."""
        env = dict(os.environ if env is None else env,
                   WEFT_ADDR=(weftd or self.weftd).address)
        return subprocess.run([ARGS.weft, *args], input=stdin, capture_output=True,
                              text=True, timeout=120, env=env)

    def curl(self, *args, stdin=None, weftd=None):
        """`buf curl` against weftd ("{addr}" in `args` is its address)."""
        return buf_curl(ARGS.buf, (weftd or self.weftd).address, *args, stdin=stdin)

    def call(self, method, body, weftd=None):
        """Calls weft.v1.Orchestrator/`method` with `body` (JSON-able); returns
        the CompletedProcess."""
        return self.curl("-d", json.dumps(body), "http://{addr}/weft.v1.Orchestrator/" + method,
                         weftd=weftd)

    def stream(self, method, body, weftd=None):
        """The answers of a call that must succeed, as a list (a stream's)."""
        r = self.call(method, body, weftd)
        self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
        return json_documents(r.stdout)

    def ok(self, method, body, weftd=None):
        """The answer of a unary call that must succeed."""
        [answer] = self.stream(method, body, weftd)
        return answer

    def refused(self, method, body, code, reason=None, weftd=None):
        """weft_error() of a call that weftd must refuse."""
        return weft_error(self.call(method, body, weftd), code, reason)

    def start_refused(self, *flags, config=None, env=None):
        """Starts weftd (on a free port unless `flags` say --listen) expecting
        it to refuse at once, as it does a bad flag or config file: exit code
        2 and a short message (under 600 characters), which it returns.
        `config`: a config file's contents (bytes, or JSON-able), passed with
        --config; the message must name the file."""
        args = [ARGS.weftd, *flags]
        if not any(f.startswith("--listen") for f in flags):
            args.insert(1, "--listen=127.0.0.1:0")
        path = None
        if config is not None:
            with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
                f.write(config if isinstance(config, bytes) else json.dumps(config).encode())
            path = f.name
            args += ["--config", path]
        try:
            r = subprocess.run(args, capture_output=True, text=True, timeout=60, env=env)
        finally:
            if path:
                os.unlink(path)
        self.assertEqual(r.returncode, 2, r.stderr)
        self.assertLess(len(r.stderr), 600, r.stderr)
        if path:
            self.assertIn(path, r.stderr)
        return r.stderr


# --- outcomes ----------------------------------------------------------------------

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
    a full outcome built from its children's (as weft::common::AssembleValue)."""
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
