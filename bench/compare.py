#!/usr/bin/env python3
"""Medians and ratios from bench/compare.sh's results.jsonl.

Prints a table (and writes it as Markdown), and writes comparison.json for
`volley bench plot`. "volley vs peer" is how many times better volley is:
peer/volley for latency and memory (lower is better), volley/peer otherwise;
above 1.00 volley is ahead.
"""

import argparse
import json
import platform
import statistics
import sys

# case prefix -> (title, metric label, how to read it from a report, higher is better)
METRICS = [
    ("echo-64x64B", "echo 64 conns x 64 B", "round trips/s", lambda r: r["ops_per_sec"], True),
    ("echo-64x16KiB", "echo 64 conns x 16 KiB", "round trips/s", lambda r: r["ops_per_sec"], True),
    ("echo-64x64B", "echo 64 x 64 B, server CPU", "server CPU µs per round trip", lambda r: r["server_cpu_us_per_op"], False),
    ("echo-64x16KiB", "echo 64 x 16 KiB, server CPU", "server CPU µs per round trip", lambda r: r["server_cpu_us_per_op"], False),
    ("echo-64x64B", "echo 64 conns x 64 B, p99", "p99 latency (µs)", lambda r: r["latency"]["p99_us"], False),
    ("latency-1x64B", "1 conn x 64 B, p99", "p99 latency (µs)", lambda r: r["latency"]["p99_us"], False),
    ("latency-1x64B", "1 conn x 64 B, p50", "p50 latency (µs)", lambda r: r["latency"]["p50_us"], False),
    ("wsload-echo-64x64B", "echo 64 conns x 64 B (wsload)", "round trips/s", lambda r: r["ops_per_sec"], True),
    ("wsload-echo-64x16KiB", "echo 64 conns x 16 KiB (wsload)", "round trips/s", lambda r: r["ops_per_sec"], True),
    ("wsload-echo-64x64B", "echo 64 x 64 B, server CPU (wsload)", "server CPU µs per round trip", lambda r: r["server_cpu_us_per_op"], False),
    ("wsload-echo-64x64B", "echo 64 x 64 B, server user-space CPU (wsload)", "user µs per round trip", lambda r: r["server_user_us_per_op"], False),
    ("wsload-echo-64x64B", "echo 64 x 64 B, server kernel CPU (wsload)", "kernel µs per round trip", lambda r: r["server_sys_us_per_op"], False),
    ("wsload-echo-64x64B", "echo 64 conns x 64 B, p99 (wsload)", "p99 latency (µs)", lambda r: r["latency"]["p99_us"], False),
    ("wsload-latency-1x64B", "1 conn x 64 B, p99 (wsload)", "p99 latency (µs)", lambda r: r["latency"]["p99_us"], False),
    ("idle-", "idle connections", "server bytes per connection", lambda r: r["server_memory"]["bytes_per_connection"], False),
    ("connect", "connect rate", "connections/s", lambda r: r["ops_per_sec"], True),
]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--json", required=True)
    ap.add_argument("--markdown", required=True)
    args = ap.parse_args()

    rows = [json.loads(line) for line in open(args.results) if line.strip()]
    servers = []
    for r in rows:
        if r["server"] not in servers:
            servers.append(r["server"])
    rounds = max((r["round"] for r in rows), default=0)

    scenarios = []
    for prefix, title, metric, get, higher in METRICS:
        per_server = []
        for s in servers:
            runs = []
            for r in rows:
                if r["server"] == s and r["case"].startswith(prefix) and r["report"]:
                    try:
                        runs.append(float(get(r["report"])))
                    except (KeyError, TypeError):
                        pass
            if runs:
                per_server.append({"name": s, "median": statistics.median(runs), "runs": runs})
        if per_server:
            scenarios.append({"name": title, "metric": metric, "higher_is_better": higher, "servers": per_server})

    with open(args.json, "w") as f:
        json.dump({"rounds": rounds, "scenarios": scenarios}, f, indent=2)

    peers = [s for s in servers if s != "volley"]
    head = ["scenario", "metric"] + servers + [f"volley vs {p}" for p in peers]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for sc in scenarios:
        med = {s["name"]: s["median"] for s in sc["servers"]}
        cells = [sc["name"], sc["metric"]] + [fmt(med.get(s)) for s in servers]
        for p in peers:
            v, o = med.get("volley"), med.get(p)
            if not v or not o:
                cells.append("-")
            else:
                cells.append(f"{(v / o if sc['higher_is_better'] else o / v):.2f}x")
        lines.append("| " + " | ".join(cells) + " |")
    table = "\n".join(lines)
    with open(args.markdown, "w") as f:
        f.write(f"Medians of {rounds} rounds on {platform.node()} ({platform.machine()}).\n\n{table}\n")
    print(f"\nmedians of {rounds} rounds; 'volley vs X' above 1.00x means volley is ahead\n")
    print(table)
    errors = sum(r["report"]["errors"] for r in rows if r["report"])
    failed = sum(1 for r in rows if not r["report"])
    saturated = sum(1 for r in rows if r["report"] and r["report"].get("generator_saturated"))
    print(f"\nruns: {len(rows)}, failed runs: {failed}, errors: {errors}, runs with a saturated generator: {saturated}")
    return 0


def fmt(v):
    if v is None:
        return "-"
    if v >= 100:
        return f"{v:,.0f}"
    return f"{v:.2f}"


if __name__ == "__main__":
    sys.exit(main())
