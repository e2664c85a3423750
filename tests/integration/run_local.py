"""Runs a suite that takes its server from $WEFT_ADDR and $WEFT_UPSTREAM (the
integration suite, the Python and Node clients' tests) against a weftd and an
HTTP fixture started here, as `make test` does; docker compose runs the same
suites against its own services.

    run_local.py --weftd PATH --fixture PATH -- COMMAND [ARG...]

weftd is started as `make run` starts it (config/weftd.json with its pools
and lazy values), on a free port, with the fixture's address allowed for the
`http` handler. Exits with COMMAND's exit code; fails if weftd or the fixture
does not stop cleanly (exit 0 on SIGTERM), so a crash at shutdown is seen.
"""

import argparse
import os
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "smoke"))
from weftd import HttpFixture, Weftd  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--fixture", required=True)
    parser.add_argument("--cwd", help="the directory COMMAND runs in")
    parser.add_argument("command", nargs="+")
    args = parser.parse_args()
    with HttpFixture(args.fixture) as fixture, \
            Weftd(args.weftd, "--config=" + os.path.join(ROOT, "config", "weftd.json"),
                  "--http_allow=" + fixture.address) as weftd:
        env = dict(os.environ, WEFT_ADDR=weftd.address, WEFT_UPSTREAM=fixture.address)
        rc = subprocess.run(args.command, env=env, cwd=args.cwd).returncode
    return rc


if __name__ == "__main__":
    sys.exit(main())
