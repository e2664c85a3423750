"""Runs every command of README.md's tour against a real weftd.

Each ```console block holds commands ("$ " lines, continued while the shell
would continue them) and their expected output. grpcurl commands run through
their `buf curl` equivalents (grpcurl is not packaged for Debian 12); other
commands run in bash from the repository root. Outputs compare as JSON with
timestamps ignored, as grpcurl-style errors against buf's error JSON, or line by
line.

With --update it rewrites the README's outputs from what the commands print
now (grpcurl's error form for RPC errors), for a developer to review.
"""

import argparse
import base64
import hashlib
import importlib
import json
import os
import re
import shlex
import subprocess
import sys
import tempfile
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from weftd import HttpFixture, Weftd, normalize  # noqa: E402

ARGS = None
README_ADDR = "127.0.0.1:50051"
# Where the README's http examples find the HTTP fixture (`make fixture`).
README_FIXTURE = "127.0.0.1:8080"
# As `make run` starts it.
WEFTD_FLAGS = ["--config=" + os.path.join(os.path.dirname(__file__), "..", "..", "config",
                                          "weftd.json")]


def parse_blocks(text):
    """Yields (command, expected output) pairs from ```console blocks."""
    for block in re.findall(r"```console\n(.*?)```", text, re.S):
        yield from parse_block(block)


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


def grpcurl_to_buf(command, address):
    """Translates the grpcurl forms the README uses into a buf curl argv."""
    words = shlex.split(command)
    assert words[0] == "grpcurl", command
    words = words[1:]
    data = None
    rest = []
    while words:
        w = words.pop(0)
        if w == "-plaintext":
            continue
        if w == "-d":
            data = words.pop(0)
            continue
        rest.append(w)
    assert rest[0] == README_ADDR, command
    base = [ARGS.buf, "curl", "--protocol", "grpc", "--http2-prior-knowledge"]
    url = "http://" + address
    if rest[1:] == ["list"]:
        return base + ["--list-services", url], "list"
    assert len(rest) == 2, command
    method = rest[1]
    argv = base + ([] if data is None else ["-d", data]) + [url + "/" + method]
    return argv, "call"


TASK = re.compile(r"tasks/[0-9a-f]{32}")


class TaskNames:
    """Maps the task names the README shows to the ones weftd made this run.

    Task ids are random, so the README's commands name the tasks its earlier
    outputs showed; each output's names are paired, in order, with the names
    at the same places in the README's output, and later commands get the
    real names."""

    def __init__(self):
        self.real = {}  # README name -> this run's name

    def to_real(self, command):
        for name in TASK.findall(command):
            self.real.setdefault(name, name)  # Named in the README only.
        return TASK.sub(lambda m: self.real.get(m.group(0), m.group(0)), command)

    def to_readme(self, actual, expected):
        known = set(self.real.values())
        shown = iter(n for n in TASK.findall(expected) if n not in self.real)
        for name in dict.fromkeys(TASK.findall(actual)):
            if name not in known:
                readme = next(shown, None)
                if readme is None:  # --update: a name the README lacks.
                    readme = "tasks/" + hashlib.md5(name.encode()).hexdigest()
                self.real[readme] = name
                known.add(name)
        back = {v: k for k, v in self.real.items()}
        return TASK.sub(lambda m: back.get(m.group(0), m.group(0)), actual)


class Fixture(HttpFixture):
    """The HTTP fixture on a free port; maps the README's address to it."""

    def __init__(self):
        super().__init__(ARGS.fixture)

    def flags(self):
        return ["--http_allow=" + self.address]

    def to_real(self, command):
        return command.replace(README_FIXTURE, self.address)

    def to_readme(self, output):
        return output.replace(self.address, README_FIXTURE)


def camel(code):
    return "".join(part.capitalize() for part in code.split("_"))


RPC = None  # google.rpc.error_details_pb2, generated at start.


def grpcurl_details(details):
    """The error details as grpcurl prints them: each in JSON with its
    @type, numbered, continuation lines indented with a tab."""
    from google.protobuf import json_format
    lines = ["  Details:"]
    for i, d in enumerate(details, 1):
        message = getattr(RPC, d["type"].rsplit(".", 1)[-1])()
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


class TourTest(unittest.TestCase):
    maxDiff = None

    def test_every_tour_command_prints_what_the_readme_shows(self):
        with open(ARGS.readme) as f:
            pairs = list(parse_blocks(f.read()))
        self.assertGreaterEqual(len(pairs), 8, "the tour lost its commands")
        names = TaskNames()
        with Fixture() as fixture, Weftd(ARGS.weftd, *WEFTD_FLAGS, *fixture.flags()) as weftd:
            env = dict(os.environ, WEFT_ADDR=weftd.address)
            env["PATH"] = os.path.dirname(ARGS.weft) + os.pathsep + env["PATH"]
            for command, expected in pairs:
                with self.subTest(command=command[:80]):
                    self.check(fixture.to_real(names.to_real(command)), expected,
                               weftd.address, env, names, fixture)

    def test_the_config_file_shown_is_the_one_make_run_uses(self):
        with open(ARGS.readme) as f:
            readme = f.read()
        shown = re.search(r"`config/weftd.json`, which `make run` uses:\n\n```json\n(.*?)```",
                          readme, re.S)
        self.assertIsNotNone(shown, "the README lost its config example")
        with open(os.path.join(ARGS.root, "config", "weftd.json")) as f:
            self.assertEqual(shown.group(1), f.read())

    def execute(self, command, address, env):
        """Runs a tour command; returns (ok, output as the README shows it)."""
        if command.startswith("grpcurl "):
            argv, _ = grpcurl_to_buf(command, address)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                err = json.loads(r.stdout + r.stderr)
                shown = ["ERROR:", "  Code: " + camel(err["code"]),
                         "  Message: " + err["message"]]
                if err.get("details"):
                    shown += grpcurl_details(err["details"])
                return False, "\n".join(shown)
            out = r.stdout.strip()
            if out.startswith("{"):
                out = json.dumps(json.loads(out), indent=2, ensure_ascii=False)
            return True, out
        command = command.replace("build/client/weft", ARGS.weft)
        r = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120,
                           env=env, cwd=ARGS.root)
        return r.returncode == 0, r.stdout.rstrip("\n")

    def check(self, command, expected, address, env, names, fixture):
        ok, actual = self.execute(command, address, env)
        actual = fixture.to_readme(names.to_readme(actual, expected))
        if command.startswith("grpcurl "):
            self.assertEqual(ok, not expected.startswith("ERROR:"), actual)
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
    """Rewrites every tour output in the README from a real run."""
    with open(ARGS.readme) as f:
        text = f.read()
    test = TourTest()
    names = TaskNames()
    with Fixture() as fixture, Weftd(ARGS.weftd, *WEFTD_FLAGS, *fixture.flags()) as weftd:
        env = dict(os.environ, WEFT_ADDR=weftd.address)

        def redo(match):
            block = match.group(1)
            out = []
            for command, expected in parse_block(block):
                _, actual = test.execute(fixture.to_real(names.to_real(command)),
                                         weftd.address, env)
                actual = fixture.to_readme(names.to_readme(actual, expected))
                out.append("$ " + command)
                if actual:
                    out.append(actual)
            return "```console\n" + "\n".join(out) + "\n```"

        text = re.sub(r"```console\n(.*?)```", redo, text, flags=re.S)
    with open(ARGS.readme, "w") as f:
        f.write(text)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--weft", required=True)
    parser.add_argument("--buf", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--readme", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--googleapis", default="/usr/share/gocode/src/github.com/gogo/googleapis",
                        help="the folder holding google/rpc/*.proto")
    parser.add_argument("--update", action="store_true")
    ARGS, rest = parser.parse_known_args()
    with tempfile.TemporaryDirectory() as out:
        # The google.rpc messages, to print error details as grpcurl does.
        subprocess.run(["protoc", "--python_out=" + out, "-I", ARGS.googleapis,
                        "google/rpc/status.proto", "google/rpc/error_details.proto"], check=True)
        sys.path.insert(0, out)
        RPC = importlib.import_module("google.rpc.error_details_pb2")
        if ARGS.update:
            update()
        else:
            unittest.main(argv=[sys.argv[0], "-v", *rest])
