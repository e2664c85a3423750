#!/usr/bin/env python3
"""What a lazy value's resolve costs on a replica: ResolveLazyValue of a
cached value from one client in sequence, against weftd alone (SQLite) and
against a replica (PostgreSQL, --replicas), which reads the value's row
before each resolve (docs/operations.md, "Replicas"). Needs a PostgreSQL
that createdb reaches, e.g. under Debian's pg_virtualenv:

  cd build && pg_virtualenv /usr/bin/python3 ../bench/replica_resolve.py \\
      --weftd=server/weftd/weftd --gen=clients/python/gen
"""

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--gen", required=True, help="the Python client's generated code")
    parser.add_argument("--calls", type=int, default=3000)
    args = parser.parse_args()
    sys.path[:0] = [args.gen, os.path.join(os.path.dirname(__file__), "..", "clients", "python")]
    from weft_client import Client, call

    def measure(store: str, *flags: str) -> tuple[float, float]:
        weftd = subprocess.Popen([args.weftd, "--listen=127.0.0.1:0", "--store=" + store, *flags],
                                 stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        try:
            address = re.search(r"listening on (\S+)", weftd.stdout.readline()).group(1)
            with Client(address, timeout=30) as client:
                client.create_lazy_value("rates", call("value", value={"eur": 1.1}))
                for _ in range(200):  # Computed once, then warm.
                    client.resolve_lazy_value("rates")
                took = []
                for _ in range(args.calls):
                    start = time.perf_counter()
                    client.resolve_lazy_value("rates")
                    took.append(time.perf_counter() - start)
        finally:
            weftd.terminate()
            weftd.wait()
        took.sort()
        return took[len(took) // 2] * 1e6, took[len(took) * 99 // 100] * 1e6

    database = "weft_bench_%s" % os.urandom(4).hex()
    subprocess.run(["createdb", database], check=True)
    rows = [("alone (SQLite)", measure("sqlite:" + tempfile.mkdtemp() + "/weft.db")),
            ("replica (PostgreSQL)",
             measure("postgresql:///" + database, "--replicas", "--replica_id=bench"))]
    print("ResolveLazyValue of a cached value, %d calls in sequence:" % args.calls)
    for name, (median, p99) in rows:
        print("  %-22s median %5.0f us   p99 %5.0f us" % (name, median, p99))


if __name__ == "__main__":
    main()
