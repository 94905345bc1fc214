#!/usr/bin/env bash
# The chat benchmarks of docs/benchmarks.md: `volley bench chat` against
# `volley serve` (SQLite, synchronous=FULL: persistence on), the load
# generator on the same 2-core machine, not pinned (both share the cores, as
# the issue's targets say). Each scenario runs ROUNDS times on a fresh server
# and data directory; the table shows medians. Results: reports/chat/.
#
#   bench/chat.sh                 # about 10 minutes
#   ROUNDS=1 DURATION=10 bench/chat.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
OUT=${OUT:-reports/chat}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PY=${PY:-python3}
. scripts/lib.sh
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"
cargo build --release --quiet -p volley
VOLLEY="$TARGET/release/volley"

# name | bench chat arguments
SCENARIOS=(
  "100x100 at 1000/s|-n 10000 -r 100 -p 1000"
  "100x100 at 500/s|-n 10000 -r 100 -p 500"
  "100x100 at 400/s|-n 10000 -r 100 -p 400"
  "1x5000 at 20/s|-n 5000 -r 1 -p 20"
  "1x5000 at 10/s|-n 5000 -r 1 -p 10"
)

for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SCENARIOS[@]}"; do
    name=${entry%%|*}
    args=${entry#*|}
    port=$(free_port)
    dir=$(mktemp -d)
    RUST_LOG=warn "$VOLLEY" serve --addr "127.0.0.1:$port" --data-dir "$dir" --max-connections-per-ip 0 --account-attempts-per-sec 0 \
      >"$OUT/serve.log" 2>&1 &
    pid=$!
    wait_port "$port"
    echo "round $round: $name"
    # shellcheck disable=SC2086
    report=$("$VOLLEY" bench chat --url "ws://127.0.0.1:$port/ws" $args -d "$DURATION" --warmup 3 \
      --connect-concurrency 128 --server-pid "$pid" --json) || report=null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    printf '{"name":"%s","round":%s,"report":%s}\n' "$name" "$round" "$report" >>"$OUT/results.jsonl"
  done
done

"$PY" - "$OUT/results.jsonl" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
names = list(dict.fromkeys(r["name"] for r in rows))
print("| rooms x members, publish rate | deliveries/s | p50 ms | p99 ms | ack p99 ms | delivered | server CPU | µs/delivery | errors | runs |")
print("|---|---|---|---|---|---|---|---|---|---|")
for n in names:
    rs = [r["report"] for r in rows if r["name"] == n and r["report"]]
    med = lambda f: statistics.median(f(r) for r in rs)
    print(f"| {n} | {med(lambda r: r['ops_per_sec']):,.0f} | {med(lambda r: r['latency']['p50_us'])/1000:.1f} "
          f"| {med(lambda r: r['latency']['p99_us'])/1000:.1f} | {med(lambda r: r['extra']['ack_p99_ms']):.1f} "
          f"| {med(lambda r: r['extra']['delivery_ratio'])*100:.1f}% | {med(lambda r: (r['server_cpu'] or 0))*100:.0f}% "
          f"| {med(lambda r: r['server_cpu_us_per_op'] or 0):.1f} | {sum(r['errors'] for r in rs)} | {len(rs)} |")
PY
