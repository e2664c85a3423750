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
import json
import os
import re
import shlex
import subprocess
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from weftd import Weftd, normalize  # noqa: E402

ARGS = None
README_ADDR = "127.0.0.1:50051"


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


def camel(code):
    return "".join(part.capitalize() for part in code.split("_"))


class TourTest(unittest.TestCase):
    maxDiff = None

    def test_every_tour_command_prints_what_the_readme_shows(self):
        with open(ARGS.readme) as f:
            pairs = list(parse_blocks(f.read()))
        self.assertGreaterEqual(len(pairs), 8, "the tour lost its commands")
        with Weftd(ARGS.weftd) as weftd:
            env = dict(os.environ, WEFT_ADDR=weftd.address)
            env["PATH"] = os.path.dirname(ARGS.weft) + os.pathsep + env["PATH"]
            for command, expected in pairs:
                with self.subTest(command=command[:80]):
                    self.check(command, expected, weftd.address, env)

    def execute(self, command, address, env):
        """Runs a tour command; returns (ok, output as the README shows it)."""
        if command.startswith("grpcurl "):
            argv, _ = grpcurl_to_buf(command, address)
            r = subprocess.run(argv, capture_output=True, text=True, timeout=120)
            if r.returncode != 0:
                err = json.loads(r.stdout + r.stderr)
                return False, "ERROR:\n  Code: %s\n  Message: %s" % (
                    camel(err["code"]), err["message"])
            out = r.stdout.strip()
            if out.startswith("{"):
                out = json.dumps(json.loads(out), indent=2, ensure_ascii=False)
            return True, out
        command = command.replace("build/client/weft", ARGS.weft)
        r = subprocess.run(["bash", "-c", command], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, text=True, timeout=120,
                           env=env, cwd=ARGS.root)
        return r.returncode == 0, r.stdout.rstrip("\n")

    def check(self, command, expected, address, env):
        ok, actual = self.execute(command, address, env)
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
    with Weftd(ARGS.weftd) as weftd:
        env = dict(os.environ, WEFT_ADDR=weftd.address)

        def redo(match):
            block = match.group(1)
            out = []
            for command, _ in parse_block(block):
                _, actual = test.execute(command, weftd.address, env)
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
    parser.add_argument("--readme", required=True)
    parser.add_argument("--root", required=True)
    parser.add_argument("--update", action="store_true")
    ARGS, rest = parser.parse_known_args()
    if ARGS.update:
        update()
    else:
        unittest.main(argv=[sys.argv[0], "-v", *rest])
