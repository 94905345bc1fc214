#!/usr/bin/env python3
"""Summarise an Autobahn-format report (index.json) and decide pass or fail.

Every case must end OK, NON-STRICT or INFORMATIONAL. UNIMPLEMENTED is allowed
only for case groups named with --allow-unimplemented (the compression cases
until permessage-deflate lands). Fewer cases than --expect means a run that
stopped early, which also fails.
"""

import argparse
import collections
import json
import sys

PASSING = {"OK", "NON-STRICT", "INFORMATIONAL"}


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("index", help="path to index.json")
    ap.add_argument("--label", default="")
    ap.add_argument("--expect", type=int, default=0, help="minimum number of cases")
    ap.add_argument("--allow-unimplemented", action="append", default=[], metavar="PREFIX")
    args = ap.parse_args()

    with open(args.index) as f:
        index = json.load(f)
    cases = {case: result for agent in index.values() for case, result in agent.items()}
    counts = collections.Counter(r["behavior"] for r in cases.values())
    close_counts = collections.Counter(r["behaviorClose"] for r in cases.values())
    bad = []
    for case, r in sorted(cases.items(), key=lambda kv: [int(p) for p in kv[0].split(".")]):
        behavior = r["behavior"]
        if behavior in PASSING:
            continue
        if behavior == "UNIMPLEMENTED" and any(case.startswith(p) for p in args.allow_unimplemented):
            continue
        bad.append(f"{case}: {behavior} (close: {r['behaviorClose']})")

    summary = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
    print(f"autobahn {args.label}: {len(cases)} cases: {summary}; close behaviour: "
          + ", ".join(f"{k} {v}" for k, v in sorted(close_counts.items())))
    if len(cases) < args.expect:
        print(f"  only {len(cases)} cases ran, expected {args.expect}")
        return 1
    for line in bad:
        print(f"  FAILED {line}")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
