#!/usr/bin/env bash
# The game benchmarks of docs/benchmarks.md.
#
# 1. The curve: `volley bench game-curve` pinned to one core (taskset -c 1):
#    one room, 5,000 pellets, N players, each tick's simulation plus every
#    player's snapshot, in-process (no sockets). Players vs p50/p99 tick time.
# 2. Over real connections: `volley serve` with one simulation thread, the
#    room filled by WebSocket bots (`volley bench game`, one input per tick
#    like the browser) plus server bots; the server's tick p50/p99 from its
#    /metrics, snapshot rate, bandwidth and input-to-snapshot latency per bot.
#    Generator and server share the 2 cores. ROUNDS runs each; medians.
#
#   bench/game.sh                        # about 8 minutes
#   ROUNDS=1 DURATION=5 bench/game.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-15}
OUT=${OUT:-reports/game}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PY=${PY:-python3}
CURVE_PLAYERS=${CURVE_PLAYERS:-50,100,200,300,400,500,600,800,1000,1200}
. scripts/lib.sh
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"
cargo build --release --quiet -p volley
VOLLEY="$TARGET/release/volley"

# total players | WebSocket bots (the rest are server bots); SCENARIOS="500|500 1000|1000" picks others
read -r -a SCENARIOS <<<"${SCENARIOS:-100|75 200|150 300|200 500|500 1000|1000}"

for round in $(seq 1 "$ROUNDS"); do
  for entry in "${SCENARIOS[@]}"; do
    total=${entry%%|*}
    ws=${entry#*|}
    port=$(free_port)
    dir=$(mktemp -d)
    # Every bot comes from 127.0.0.1: the per-address cap (256) is lifted.
    RUST_LOG=warn "$VOLLEY" serve --addr "127.0.0.1:$port" --data-dir "$dir" --game-sim-threads 1 --max-connections-per-ip 0 \
      --game-room-capacity 1000 --game-bots-per-room $((total - ws)) --game-pellets 5000 --game-world-size 6000 \
      >"$OUT/serve.log" 2>&1 &
    pid=$!
    wait_port "$port"
    echo "round $round: $total players ($ws over WebSockets)"
    report=$("$VOLLEY" bench game --url "ws://127.0.0.1:$port/game/ws" -n "$ws" -d "$DURATION" --warmup 3 \
      --server-pid "$pid" --json) || report=null
    kill "$pid"; wait "$pid" 2>/dev/null || true
    rm -rf "$dir"
    printf '{"players":%s,"ws":%s,"round":%s,"report":%s}\n' "$total" "$ws" "$round" "$report" >>"$OUT/results.jsonl"
  done
done

"$PY" - "$OUT/results.jsonl" "$OUT/network.txt" <<'PY' | tee "$OUT/summary.md"
import json, statistics, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| players (WebSocket + server bots) | tick p50 ms | tick p99 ms | sim p99 ms | encode p99 ms | overruns | snapshots/s per bot | KB/s per bot | input→snapshot p50 ms | p99 ms | server CPU | server KB per bot | errors | runs |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
points = []
for total in sorted({r["players"] for r in rows}):
    rs = [r for r in rows if r["players"] == total and r["report"]]
    if not rs:
        continue
    ws = rs[0]["ws"]
    rep = [r["report"] for r in rs]
    med = lambda f: statistics.median(f(r) for r in rep)
    x = lambda k: (lambda r: r["extra"].get(k, 0))
    p99 = med(x("tick_p99_ms"))
    points.append(f"{total}:{p99:.3f}")
    print(f"| {total} ({ws} + {total - ws}) | {med(x('tick_p50_ms')):.2f} | {p99:.2f} | {med(x('tick_sim_p99_ms')):.2f} "
          f"| {med(x('tick_encode_p99_ms')):.2f} | {sum(r['extra'].get('tick_overruns', 0) for r in rep):.0f} "
          f"| {med(x('snapshots_per_bot_per_s')):.1f} | {med(x('bytes_per_bot_per_s'))/1000:.2f} "
          f"| {med(lambda r: r['latency']['p50_us'])/1000:.1f} | {med(lambda r: r['latency']['p99_us'])/1000:.1f} "
          f"| {med(lambda r: (r['server_cpu'] or 0))*100:.0f}% | {med(x('server_bytes_per_bot'))/1000:.1f} "
          f"| {sum(r['errors'] for r in rep)} | {len(rep)} |")
open(sys.argv[2], "w").write(",".join(points))
PY

echo
echo "curve (one core, in-process):"
taskset -c 1 "$VOLLEY" bench game-curve --players "$CURVE_PLAYERS" --ticks 900 \
  --network "$(cat "$OUT/network.txt")" --json "$OUT/curve.json" --svg docs/game-curve.svg | tee "$OUT/curve.txt"
