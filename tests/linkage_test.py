"""Checks that each test binary links only what its layer may use.

--no-protobuf BINARIES: the engine's tests, which may link neither protobuf
nor gRPC. --no-grpc BINARIES: the tests of the layers between the engine and
the service (common, handlers, plan, store, tasks, lazy), which may link
protobuf but not gRPC. A binary's NEEDED entries (readelf -d) name the shared
libraries it was linked with; Debian's toolchain links without --as-needed,
so a library linked but unused still shows.
"""

import argparse
import re
import subprocess
import sys
import unittest

ARGS = None


def needed(path):
    out = subprocess.run(["readelf", "-d", path], capture_output=True, text=True,
                         check=True).stdout
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", out)


class LinkageTest(unittest.TestCase):
    def check(self, binaries, forbidden):
        self.assertTrue(binaries, "no binaries given")
        for path in binaries:
            libs = needed(path)
            self.assertTrue(any(l.startswith("libc.so") for l in libs),
                            "%s: readelf found no NEEDED entries: %s" % (path, libs))
            bad = [l for l in libs if any(l.startswith(f) for f in forbidden)]
            self.assertEqual(bad, [], "%s links %s" % (path, ", ".join(bad)))

    def test_engine_tests_link_no_protobuf_or_grpc(self):
        self.check(ARGS.no_protobuf, ("libprotobuf", "libgrpc", "libgpr"))

    def test_middle_layers_link_no_grpc(self):
        self.check(ARGS.no_grpc, ("libgrpc", "libgpr"))


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--no-protobuf", nargs="+", default=[])
    parser.add_argument("--no-grpc", nargs="+", default=[])
    ARGS, rest = parser.parse_known_args()
    unittest.main(argv=[sys.argv[0], "-v", *rest])
