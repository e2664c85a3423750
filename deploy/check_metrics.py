#!/usr/bin/env python3
"""Scrapes weftd's GET /metrics (--metrics_listen) at HOST:PORT and checks
what the compose integration suites must have left there: every metric
family, RPCs counted by method and code, a latency histogram per method.

  deploy/check_metrics.py weftd:9090
"""

import re
import sys
import urllib.request

FAMILIES = [
    "weft_rpcs_total", "weft_rpc_duration_seconds", "weft_runs_in_flight", "weft_tasks",
    "weft_pool_threads", "weft_pool_queued", "weft_pool_rejected_total",
    "weft_memory_used_bytes", "weft_lazy_hits_total", "weft_lazy_loads_total",
]


def main():
    url = "http://%s/metrics" % sys.argv[1]
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with opener.open(url, timeout=30) as r:
        text = r.read().decode()
    problems = ["no %s family" % f for f in FAMILIES if "# TYPE %s " % f not in text]
    runs = re.search(r'^weft_rpcs_total\{method="/weft.v1.Orchestrator/Run",code="OK"\} (\d+)$',
                     text, re.M)
    if not runs or int(runs.group(1)) == 0:
        problems.append("no successful Run counted")
    count = re.search(r'^weft_rpc_duration_seconds_count\{method="/weft.v1.Orchestrator/'
                      r'CreateTask"\} (\d+)$', text, re.M)
    if not count or int(count.group(1)) == 0:
        problems.append("no CreateTask in the latency histogram")
    if problems:
        print("metrics at %s: %s" % (url, "; ".join(problems)))
        return 1
    print("metrics at %s: %d lines, every family present, counts moved"
          % (url, len(text.splitlines())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
