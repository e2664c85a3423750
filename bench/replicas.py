#!/usr/bin/env python3
"""Replicas on one PostgreSQL (docs/operations.md, "Replicas"), measured:

1. CreateTask rate through one, two and three replicas on one database:
   bench/loadgen (C++, gRPC's callback API) keeps --concurrency creates of a
   one-leaf task in flight, split evenly over the replicas, one loadgen per
   replica; the rates are summed. Each run starts on a new database.
2. GetTask latency of a finished task from its owner and from another
   replica (which reads the database), one call in flight.
3. Failover: a replica running a task is killed (SIGKILL) at a random
   moment one to two leases after it started (so at any point of its
   renewal cycle and of the others' adoption rounds); the time from the
   kill until another replica has adopted the task and runs it again, as a
   client polling that replica every 10 ms sees it.

Needs a PostgreSQL that createdb reaches, e.g. under Debian's pg_virtualenv:

  cd build && pg_virtualenv /usr/bin/python3 ../bench/replicas.py \\
      --weftd=server/weftd/weftd --loadgen=bench/loadgen --gen=clients/python/gen
"""

import argparse
import json
import os
import random
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time

CREATE = json.dumps({"plan": {"call": {"handler": "value", "args": {"value": 1}}}})


class Replica:
    def __init__(self, weftd: str, database: str, name: str, lease: str) -> None:
        self.name = name
        self.process = subprocess.Popen(
            [weftd, "--listen=127.0.0.1:0", "--store=postgresql:///" + database, "--replicas",
             "--replica_id=" + name, "--lease_duration=" + lease, "--shutdown_grace=0.5s",
             # The load below is what is measured, not these limits.
             "--max_queued_tasks=1000000", "--max_retained_tasks=10000000"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        line = self.process.stdout.readline()
        match = re.search(r"listening on (\S+)", line)
        if not match:
            raise RuntimeError("weftd %s did not start: %r" % (name, line))
        self.address = match.group(1)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def kill(self) -> None:
        self.process.kill()
        self.process.wait(60)


DATABASES = []


def new_database() -> str:
    database = "weft_bench_%s" % os.urandom(4).hex()
    subprocess.run(["createdb", database], check=True)
    DATABASES.append(database)
    return database


def result_file() -> str:
    handle, path = tempfile.mkstemp(suffix=".json")
    os.close(handle)
    return path


def create_rate(args, replicas: int) -> tuple[float, float, int]:
    database = new_database()
    started = [Replica(args.weftd, database, "r%d" % i, "5s") for i in range(replicas)]
    try:
        outs, loads = [], []
        for replica in started:
            out = result_file()
            outs.append(out)
            loads.append(subprocess.Popen(
                [args.loadgen, "--target=" + replica.address,
                 "--method=/weft.v1.Orchestrator/CreateTask",
                 "--request_type=weft.v1.CreateTaskRequest", "--request=" + CREATE,
                 "--concurrency=%d" % max(1, args.concurrency // replicas),
                 "--duration=" + args.duration, "--warmup=1s", "--json_out=" + out],
                stdout=subprocess.DEVNULL))
        for load in loads:
            load.wait()
        results = [json.load(open(out)) for out in outs]
    finally:
        for replica in started:
            replica.stop()
    rate = sum(r["rps"] for r in results)
    p99 = max(r["p99_ms"] for r in results)
    errors = sum(r["errors"] for r in results)
    return rate, p99, errors


def get_latency(args) -> list[tuple[str, dict]]:
    from weft_client import Client, call
    database = new_database()
    owner = Replica(args.weftd, database, "owner", "5s")
    other = Replica(args.weftd, database, "other", "5s")
    try:
        with Client(owner.address, timeout=30) as client:
            task = client.create_task(call("value", value=1))
            client.wait_task(task.name, wait=30)
        rows = []
        for label, replica in (("from its owner", owner), ("from another replica", other)):
            out = result_file()
            subprocess.run(
                [args.loadgen, "--target=" + replica.address,
                 "--method=/weft.v1.Orchestrator/GetTask",
                 "--request_type=weft.v1.GetTaskRequest",
                 "--request=" + json.dumps({"name": task.name}), "--concurrency=1",
                 "--duration=3s", "--warmup=1s", "--json_out=" + out],
                check=True, stdout=subprocess.DEVNULL)
            rows.append((label, json.load(open(out))))
        return rows
    finally:
        owner.stop()
        other.stop()


def failover(args, lease: float) -> float:
    from weft.v1 import task_pb2
    from weft_client import Client, call
    database = new_database()
    doomed = Replica(args.weftd, database, "doomed", "%gs" % lease)
    started = time.monotonic()
    heir = Replica(args.weftd, database, "heir", "%gs" % lease)
    try:
        with Client(doomed.address, timeout=30) as a, Client(heir.address, timeout=30) as b:
            task = a.create_task(call("sleep", duration="600s"))
            while b.get_task(task.name).state != task_pb2.TASK_STATE_RUNNING:
                time.sleep(0.01)
            time.sleep(max(0.0, started + random.uniform(lease, 2 * lease) - time.monotonic()))
            killed = time.monotonic()
            doomed.kill()
            while True:
                seen = b.get_task(task.name)
                if seen.resumes == 1 and seen.state == task_pb2.TASK_STATE_RUNNING:
                    return time.monotonic() - killed
                if time.monotonic() - killed > 120:
                    raise TimeoutError("the task was not adopted within 120 s")
                time.sleep(0.01)
    finally:
        doomed.kill()
        heir.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--weftd", required=True)
    parser.add_argument("--loadgen", required=True)
    parser.add_argument("--gen", required=True, help="the Python client's generated code")
    parser.add_argument("--concurrency", type=int, default=48)
    parser.add_argument("--duration", default="5s")
    parser.add_argument("--failovers", type=int, default=6)
    args = parser.parse_args()
    sys.path[:0] = [args.gen, os.path.join(os.path.dirname(__file__), "..", "clients", "python")]

    try:
        print("CreateTask of a one-leaf task, %d in flight, %s:"
              % (args.concurrency, args.duration))
        for replicas in (1, 2, 3):
            rate, p99, errors = create_rate(args, replicas)
            print("  %d replica(s)   %6.0f tasks/s   p99 %6.1f ms (the worst replica's)   "
                  "errors %d" % (replicas, rate, p99, errors))
        print("GetTask of a finished task, one call in flight:")
        for label, r in get_latency(args):
            print("  %-22s p50 %.3f ms   p99 %.3f ms" % (label, r["p50_ms"], r["p99_ms"]))
        for lease in (3.0, 5.0):
            if args.failovers < 1:
                break
            times = sorted(failover(args, lease) for _ in range(args.failovers))
            print("Failover, --lease_duration=%gs, %d kills: kill -9 to the task running "
                  "again on another replica: min %.2f s, median %.2f s, max %.2f s"
                  % (lease, len(times), times[0], statistics.median(times), times[-1]))
    finally:
        for database in DATABASES:
            subprocess.run(["dropdb", "--if-exists", database], check=False)


if __name__ == "__main__":
    main()
