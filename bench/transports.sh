#!/usr/bin/env bash
# WebSockets over HTTP/1.1 and HTTP/2 (RFC 8441) on the same `volley echo`
# over TLS (docs/benchmarks.md, "Transports"): `volley bench echo` with text
# messages (the same full client on both transports, which decodes every
# echo), C WebSockets each on its own TLS connection, then the same C
# WebSockets as streams of one HTTP/2 connection, and of C HTTP/2
# connections. Server pinned to core 0 with one worker, generator to core 1.
# ROUNDS rounds, alternating the setups; the table shows medians.
# Results: reports/transports/.
#
#   bench/transports.sh              # about 4 minutes
#   ROUNDS=1 DURATION=5 bench/transports.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
CONNS=${CONNS:-64}
SIZE=${SIZE:-64}
OUT=${OUT:-reports/transports}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PY=${PY:-python3}
. scripts/lib.sh
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"
cargo build --release --quiet -p volley
VOLLEY="$TARGET/release/volley"
"$VOLLEY" dev-cert --cert "$OUT/cert.pem" --key "$OUT/key.pem" >/dev/null

# name | extra bench arguments
SETUPS=(
  "HTTP/1.1: $CONNS TLS connections|"
  "HTTP/2: $CONNS streams on 1 connection|--http2 --h2-connections 1"
  "HTTP/2: $CONNS streams on $CONNS connections|--http2 --h2-connections $CONNS"
)

for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SETUPS[@]}"; do
    name=${entry%%|*}
    extra=${entry#*|}
    port=$(free_port)
    VOLLEY_THREADS=1 taskset -c 0 "$VOLLEY" echo --addr "127.0.0.1:$port" --no-deflate \
      --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" >"$OUT/echo.log" 2>&1 &
    pid=$!
    wait_port "$port"
    echo "round $round: $name"
    # shellcheck disable=SC2086
    report=$(VOLLEY_THREADS=1 taskset -c 1 "$VOLLEY" bench echo --url "wss://localhost:$port/" --ca "$OUT/cert.pem" \
      -c "$CONNS" -s "$SIZE" -d "$DURATION" --text --server-pid "$pid" --json $extra) || report=null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    printf '{"round":%s,"name":"%s","report":%s}\n' "$round" "$name" "$report" >>"$OUT/results.jsonl"
  done
done

"$PY" - "$OUT/results.jsonl" <<'PY' | tee "$OUT/summary.md"
import json, sys, statistics
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = defaultdict(list)
for r in rows:
    if r["report"]:
        groups[r["name"]].append(r["report"])
print("| transport | rounds | round trips/s | p50 µs | p99 µs | server CPU µs per round trip | errors |")
print("|---|---|---|---|---|---|---|")
base = None
for name, reps in groups.items():
    med = lambda f: statistics.median(f(r) for r in reps)
    rate = med(lambda r: r["ops_per_sec"])
    base = base or rate
    cpu = med(lambda r: (r.get("server_cpu_us_per_op") or 0))
    print(f"| {name} | {len(reps)} | {rate:,.0f} ({rate / base:.2f}x) | {med(lambda r: r['latency']['p50_us']):,.0f} "
          f"| {med(lambda r: r['latency']['p99_us']):,.0f} | {cpu:.2f} | {sum(r['errors'] for r in reps)} |")
PY
