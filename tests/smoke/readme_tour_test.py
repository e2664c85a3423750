"""Runs every command of the docs' tours (README.md, docs/tour.md, ...)
against a real weftd.

Each ```console block holds commands ("$ " lines, continued while the shell
would continue them) and their expected output. Each document given with
--doc gets its own weftd, started as `make run` starts it (with
config/weftd.json), and its own HTTP fixture; the commands run in order, in
`bash -o pipefail` from the repository root, and at the end weftd is stopped
with SIGTERM and must exit 0.

Every command must exit 0: one that is meant to fail shows it in the doc,
ending with `; echo "exit $?"` so that the code is part of the output. The
output compared is the command's stdout; anything on stderr fails the test,
so a command whose doc output includes stderr says `2>&1`. Outputs compare
as JSON with timestamps ignored (a JSON document, maybe followed by more
lines), or line by line.

grpcurl is not packaged for Debian 12: `grpcurl` on the commands' PATH is
this file acting as grpcurl over `buf curl` (--as-grpcurl), printing what
grpcurl prints (the response on stdout; an error as "ERROR: Code: ...
Message: ... Details: ..." on stderr, exit code 64 + the status code). The
docs' `build/client/weft` is --weft, 127.0.0.1:50051 is the test's weftd and
127.0.0.1:8080 its HTTP fixture.

A doc may start its weftd itself: a ```sh block whose command is
`build/server/weftd/weftd FLAGS` starts it with those flags (relative paths from
the repository root) where the block stands, and the commands before it run
first (to make certificates, say). /tmp/weft-tour in a doc is a fresh folder
of the test's.

The stand-in takes grpcurl's -cacert, -cert, -key (TLS) and -H (a header)
too, so docs/secure-tour.md runs with TLS and bearer tokens.

With --update it rewrites each document's outputs, in that document, from
what the commands print now, for a developer to review; a command that
exits non-zero or writes to stderr is reported.
"""

import atexit
import base64
import hashlib
import importlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from weftd import ARGS, HttpFixture, Weftd, json_documents, normalize, run_tests  # noqa: E402

# The address the docs' commands name: weftd as `make run` starts it.
DOC_ADDR = "127.0.0.1:50051"
# Where the docs' http examples find the HTTP fixture (`make fixture`).
DOC_FIXTURE = "127.0.0.1:8080"
# Where the --as-grpcurl stand-in finds what it needs.
ENV_BUF, ENV_ADDRESS, ENV_PB2 = "WEFT_TOUR_BUF", "WEFT_TOUR_ADDRESS", "WEFT_TOUR_PB2"
# `buf curl`'s code names (the Connect protocol's) in the order of gRPC's
# status numbers.
CODES = ["ok", "canceled", "unknown", "invalid_argument", "deadline_exceeded", "not_found",
         "already_exists", "permission_denied", "resource_exhausted", "failed_precondition",
         "aborted", "out_of_range", "unimplemented", "internal", "unavailable", "data_loss",
         "unauthenticated"]
CONSOLE = re.compile(r"```console\n(.*?)```", re.S)
# The blocks a doc's run follows: commands, and where it starts weftd.
BLOCK = re.compile(r"```(console|sh)\n(.*?)```", re.S)
WEFTD_COMMAND = "build/server/weftd/weftd"
# A folder a doc may write to (certificates); each run has its own.
DOC_TMP = "/tmp/weft-tour"
GOOGLEAPIS = "/usr/share/gocode/src/github.com/gogo/googleapis"


def weftd_flags():
    """As `make run` starts weftd."""
    return ["--config=" + os.path.abspath(os.path.join(ARGS.root, "config", "weftd.json"))]


def parse_blocks(text):
    """Yields (command, expected output) pairs from ```console blocks."""
    for block in CONSOLE.findall(text):
        yield from parse_block(block)


def weftd_block(block):
    """The flags of a ```sh block that starts weftd, or None."""
    words = shlex.split(block.replace("\\\n", " "))
    if not words or words[0] != WEFTD_COMMAND:
        return None
    return words[1:]


def parse_steps(text):
    """A doc's run: ("weftd", flags) where it starts weftd, and ("run",
    command, expected output) for each command, in the doc's order."""
    for kind, block in BLOCK.findall(text):
        if kind == "console":
            for command, expected in parse_block(block):
                yield "run", command, expected
        elif (flags := weftd_block(block)) is not None:
            yield "weftd", flags


def parse_block(block):
    """The (command, output) pairs of one block."""
    lines = block.splitlines()
    i = 0
    while i < len(lines):
        if not lines[i].startswith("$ "):
            raise ValueError("output before a command: %r" % lines[i])
        command = lines[i][2:]
        i += 1
        while not complete(command):
            command += "\n" + lines[i]
            i += 1
        output = []
        while i < len(lines) and not lines[i].startswith("$ "):
            output.append(lines[i])
            i += 1
        yield command, "\n".join(output)


def complete(command):
    if command.endswith("\\"):
        return False
    try:
        shlex.split(command)
        return True
    except ValueError:
        return False


# --- grpcurl, as far as the docs use it ------------------------------------------


def camel(code):
    return "".join(part.capitalize() for part in code.split("_"))


def grpcurl_details(details):
    """The error details as grpcurl prints them: each in JSON with its
    @type, numbered, continuation lines indented with a tab."""
    from google.protobuf import json_format
    sys.path.insert(0, os.environ[ENV_PB2])
    rpc = importlib.import_module("google.rpc.error_details_pb2")
    lines = ["  Details:"]
    for i, d in enumerate(details, 1):
        message = getattr(rpc, d["type"].rsplit(".", 1)[-1])()
        value = d["value"]
        message.ParseFromString(base64.b64decode(value + "=" * (-len(value) % 4)))
        shown = {"@type": "type.googleapis.com/" + d["type"]}
        shown.update(json_format.MessageToDict(message))
        if "metadata" in shown:  # grpcurl sorts map keys.
            shown["metadata"] = dict(sorted(shown["metadata"].items()))
        prefix = "  %d)" % i
        for n, line in enumerate(json.dumps(shown, indent=2, ensure_ascii=False).split("\n")):
            lines.append((prefix + "\t" if n == 0 else " " * len(prefix) + "\t") + line)
    return lines


# grpcurl's options with a value, and buf curl's for them.
GRPCURL_OPTIONS = {"-d": "-d", "-H": "-H", "-cacert": "--cacert", "-cert": "--cert",
                   "-key": "--key"}


def as_grpcurl(argv):
    """`grpcurl [-plaintext] [-cacert F] [-cert F -key F] [-H HEADER]...
    [-d DATA] 127.0.0.1:50051 list|METHOD` through `buf curl` against the
    test's weftd; prints and exits as grpcurl does."""
    options, rest = [], []
    while argv:
        word = argv.pop(0)
        if word == "-plaintext":
            continue
        if word in GRPCURL_OPTIONS and argv:
            options.append((word, argv.pop(0)))
            continue
        rest.append(word)
    if len(rest) != 2 or rest[0] != DOC_ADDR or rest[1].startswith("-"):
        sys.stderr.write("grpcurl (the tour's stand-in) takes [-plaintext] [-cacert F] "
                         "[-cert F] [-key F] [-H HEADER] [-d DATA] %s list|METHOD, not %s\n"
                         % (DOC_ADDR, shlex.join(rest)))
        return 2
    tls = any(name == "-cacert" for name, _ in options)
    url = ("https://" if tls else "http://") + os.environ[ENV_ADDRESS]
    argv = [os.environ[ENV_BUF], "curl", "--protocol", "grpc"]
    if not tls:
        argv.append("--http2-prior-knowledge")
    for name, value in options:
        if name != "-d":
            argv += [GRPCURL_OPTIONS[name], value]
    data = next((value for name, value in options if name == "-d"), None)
    if rest[1] == "list":
        argv += ["--list-services", url]
    else:
        argv += ([] if data is None else ["-d", data]) + [url + "/" + rest[1]]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    if r.returncode == 0:
        sys.stderr.write(r.stderr)
        out = r.stdout.strip()
        if out.startswith("{"):
            out = "\n".join(json.dumps(d, indent=2, ensure_ascii=False)
                            for d in json_documents(out))
        print(out)
        return 0
    try:
        err = json.loads(r.stdout + r.stderr)
        code = CODES.index(err["code"])
    except (ValueError, KeyError):
        sys.stderr.write(r.stdout + r.stderr)
        return 1
    shown = ["ERROR:", "  Code: " + camel(err["code"]), "  Message: " + err["message"]]
    if err.get("details"):
        shown += grpcurl_details(err["details"])
    sys.stderr.write("\n".join(shown) + "\n")
    return 64 + code


# --- running the docs' commands --------------------------------------------------


TASK = re.compile(r"tasks/[0-9a-f]{32}")


class TaskNames:
    """Maps the task names a doc shows to the ones weftd made this run.

    Task ids are random, so a doc's commands name the tasks its earlier
    outputs showed; each output's names are paired, in order, with the names
    at the same places in the doc's output, and later commands get the real
    names."""

    def __init__(self):
        self.real = {}  # The doc's name -> this run's name.

    def to_real(self, command):
        for name in TASK.findall(command):
            self.real.setdefault(name, name)  # Named in the doc only.
        return TASK.sub(lambda m: self.real.get(m.group(0), m.group(0)), command)

    def to_doc(self, actual, expected):
        known = set(self.real.values())
        shown = iter(n for n in TASK.findall(expected) if n not in self.real)
        for name in dict.fromkeys(TASK.findall(actual)):
            if name not in known:
                doc = next(shown, None)
                if doc is None:  # --update: a name the doc lacks.
                    doc = "tasks/" + hashlib.md5(name.encode()).hexdigest()
                self.real[doc] = name
                known.add(name)
        return self.shown(actual)

    def shown(self, text):
        """`text` with the names this run made shown as the doc shows them."""
        back = {v: k for k, v in self.real.items()}
        return TASK.sub(lambda m: back.get(m.group(0), m.group(0)), text)


class Fixture(HttpFixture):
    """The HTTP fixture on a free port; maps the docs' address to it."""

    def __init__(self):
        super().__init__(ARGS.fixture)

    def flags(self):
        return ["--http_allow=" + self.address]

    def to_real(self, command):
        return command.replace(DOC_FIXTURE, self.address)

    def to_doc(self, output):
        return output.replace(self.address, DOC_FIXTURE)


class Session:
    """One doc's run: a weftd (as `make run` starts it, unless the doc starts
    its own), the HTTP fixture, a folder for DOC_TMP, and the commands'
    environment (PATH with the grpcurl stand-in and weft)."""

    def __init__(self, bin_dir, pb2_dir, own_weftd=False):
        """`own_weftd`: the doc starts weftd (start_weftd) after its first
        commands."""
        self.bin_dir, self.pb2_dir, self.own_weftd = bin_dir, pb2_dir, own_weftd
        self.weftd = None

    def __enter__(self):
        self.tmp = tempfile.mkdtemp(prefix="weft-tour-")
        self.fixture = Fixture().start()
        self.names = TaskNames()
        self.env = dict(os.environ, **{ENV_BUF: os.path.abspath(ARGS.buf), ENV_PB2: self.pb2_dir})
        self.env["PATH"] = os.pathsep.join(
            [self.bin_dir, os.path.dirname(os.path.abspath(ARGS.weft)), self.env["PATH"]])
        if not self.own_weftd:
            try:
                self.start_weftd(weftd_flags())
            except BaseException:
                self.__exit__(*sys.exc_info())
                raise
        return self

    def start_weftd(self, flags):
        """Starts weftd with `flags` as a doc gives them."""
        if self.weftd is not None:
            raise ValueError("a doc starts weftd once")
        flags = [self.real_flag(f) for f in flags]
        self.weftd = Weftd(ARGS.weftd, *flags, *self.fixture.flags())
        self.env.update(WEFT_ADDR=self.weftd.address, **{ENV_ADDRESS: self.weftd.address})

    def real_flag(self, flag):
        """A doc's weftd flag as this run gives it: DOC_TMP its folder, a
        relative path from the repository root."""
        name, eq, value = flag.replace(DOC_TMP, self.tmp).partition("=")
        if eq and not value.startswith("/") and os.path.exists(os.path.join(ARGS.root, value)):
            value = os.path.abspath(os.path.join(ARGS.root, value))
        return name + eq + value

    def stop_weftd(self):
        """SIGTERM; returns its exit code (raises unless 0)."""
        if self.weftd is None:
            raise AssertionError("the doc never started weftd")
        code, _ = self.weftd.stop()
        return code

    def __exit__(self, *exc):
        try:
            if self.weftd is not None:
                self.weftd.__exit__(*exc)
        finally:
            self.fixture.__exit__(*exc)
            shutil.rmtree(self.tmp, True)
        return False

    def run(self, command, expected):
        """Runs a doc's command; returns (exit code, stdout, stderr), with
        this run's task names, addresses and folder shown as the doc shows
        them."""
        real = self.fixture.to_real(self.names.to_real(command)).replace(DOC_TMP, self.tmp)
        real = real.replace("build/client/weft", os.path.abspath(ARGS.weft))
        r = subprocess.run(["bash", "-o", "pipefail", "-c", real], capture_output=True,
                           text=True, timeout=120, env=self.env, cwd=ARGS.root)
        out = self.to_doc(self.names.to_doc(r.stdout.rstrip("\n"), expected))
        err = self.to_doc(self.names.shown(r.stderr))
        return r.returncode, out, err

    def to_doc(self, text):
        return self.fixture.to_doc(text).replace(self.tmp, DOC_TMP)


def make_bin_dir(where):
    """A folder with `grpcurl`: this file, acting as grpcurl."""
    path = os.path.join(where, "grpcurl")
    with open(path, "w") as f:
        f.write("#!/bin/sh\nexec %s %s --as-grpcurl \"$@\"\n" % (
            shlex.quote(sys.executable), shlex.quote(os.path.abspath(__file__))))
    os.chmod(path, 0o755)
    return where


def read(path):
    with open(path) as f:
        return f.read()


class TourTest(unittest.TestCase):
    maxDiff = None

    def test_every_command_of_the_docs_prints_what_they_show(self):
        docs = [(path, list(parse_steps(read(path)))) for path in ARGS.docs]
        checked = sum(step[0] == "run" for _, steps in docs for step in steps)
        self.assertGreaterEqual(checked, 8, "the tour lost its commands")
        for path, steps in docs:
            if not any(step[0] == "run" for step in steps):
                continue
            own = any(step[0] == "weftd" for step in steps)
            with Session(BIN_DIR, PB2_DIR, own_weftd=own) as session:
                for step in steps:
                    if step[0] == "weftd":
                        session.start_weftd(step[1])
                        continue
                    _, command, expected = step
                    with self.subTest(doc=os.path.relpath(path, ARGS.root), command=command[:80]):
                        self.check(session, command, expected)
                self.assertEqual(session.stop_weftd(), 0)  # SIGTERM; raises unless 0.
        sys.stderr.write("\nchecked %d commands of %d documents\n" % (checked, len(docs)))

    def test_a_doc_can_start_its_own_weftd(self):
        steps = list(parse_steps("```console\n$ echo a\na\n```\n```sh\n"
                                 "build/server/weftd/weftd --tls_cert=/tmp/weft-tour/s.pem \\\n"
                                 "  --auth_tokens=config/x.json\n```\n"
                                 "```sh\nmake run\n```\n```console\n$ echo b\nb\n```\n"))
        self.assertEqual(steps, [("run", "echo a", "a"),
                                 ("weftd", ["--tls_cert=/tmp/weft-tour/s.pem",
                                            "--auth_tokens=config/x.json"]),
                                 ("run", "echo b", "b")])

    def test_the_config_file_shown_is_the_one_make_run_uses(self):
        pattern = re.compile(r"`config/weftd.json`, which `make run` uses:\n\n```json\n(.*?)```",
                             re.S)
        shown = [m.group(1) for path in ARGS.docs for m in pattern.finditer(read(path))]
        self.assertTrue(shown, "the docs lost their config example")
        for text in shown:
            self.assertEqual(text, read(os.path.join(ARGS.root, "config", "weftd.json")))

    def check(self, session, command, expected):
        code, actual, err = session.run(command, expected)
        self.assertEqual(code, 0, "the command exited %d; a command meant to fail ends with "
                         "'; echo \"exit $?\"'. Its stdout:\n%s\nits stderr:\n%s"
                         % (code, actual, err))
        self.assertEqual(err, "", "the command wrote to stderr; if the doc means to show "
                         "it, the command says 2>&1")
        self.compare(actual, expected)

    def compare(self, actual, expected):
        if expected.lstrip().startswith("{"):
            # A JSON document, maybe followed by more lines.
            decoder = json.JSONDecoder()
            want, end_w = decoder.raw_decode(expected.strip())
            got, end_g = decoder.raw_decode(actual.strip())
            self.assertEqual(normalize(got), normalize(want))
            self.assertEqual(actual.strip()[end_g:].strip(), expected.strip()[end_w:].strip())
        else:
            self.assertEqual(actual.strip().splitlines(), expected.strip().splitlines())


def update():
    """Rewrites every doc's outputs from a real run, each in its own file."""
    for path in ARGS.docs:
        text = read(path)
        if not CONSOLE.search(text):
            continue
        own = any(step[0] == "weftd" for step in parse_steps(text))
        with Session(BIN_DIR, PB2_DIR, own_weftd=own) as session:

            def redo(match):
                if match.group(1) == "sh":
                    flags = weftd_block(match.group(2))
                    if flags is not None:
                        session.start_weftd(flags)
                    return match.group(0)
                out = []
                for command, expected in parse_block(match.group(2)):
                    code, actual, err = session.run(command, expected)
                    if code != 0 or err:
                        sys.stderr.write("%s: exit code %d, stderr %r: %s\n"
                                         % (path, code, err[:500], command[:200]))
                    out.append("$ " + command)
                    if actual:
                        out.append(actual)
                return "```console\n" + "\n".join(out) + "\n```"

            text = BLOCK.sub(redo, text)
        with open(path, "w") as f:
            f.write(text)


def add_arguments(parser):
    parser.add_argument("--doc", "--readme", dest="docs", action="append", required=True,
                        help="a Markdown file whose ```console blocks to run (repeatable)")
    parser.add_argument("--update", action="store_true",
                        help="rewrite the docs' outputs instead of testing them")


BIN_DIR = PB2_DIR = None


def setup():
    """The grpcurl stand-in and the google.rpc messages it prints details
    with; with --update, rewrites the docs and exits."""
    global BIN_DIR, PB2_DIR
    ARGS.googleapis = ARGS.googleapis or GOOGLEAPIS
    BIN_DIR = make_bin_dir(tempfile.mkdtemp(prefix="weft-tour-bin-"))
    PB2_DIR = tempfile.mkdtemp(prefix="weft-tour-pb2-")
    for path in (BIN_DIR, PB2_DIR):
        atexit.register(shutil.rmtree, path, True)
    subprocess.run(["protoc", "--python_out=" + PB2_DIR, "-I", ARGS.googleapis,
                    "google/rpc/status.proto", "google/rpc/error_details.proto"], check=True)
    if ARGS.update:
        update()
        sys.exit(0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--as-grpcurl"]:
        sys.exit(as_grpcurl(sys.argv[2:]))
    run_tests("weftd", "weft", "buf", "fixture", "root", add_arguments=add_arguments,
              setup=setup)
