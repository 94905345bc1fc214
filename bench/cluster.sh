#!/usr/bin/env bash
# Chat on one node vs three nodes (docs/benchmarks.md, "Chat on several
# nodes"): `volley bench chat` with clients spread over the nodes, every
# node on one PostgreSQL and one broker (Redis, then NATS), all on this
# machine with the load generator. Each node and service is started here on
# free ports and stopped at the end. Results: reports/cluster/.
#
#   bench/cluster.sh                          # about 15 minutes
#   RATES="200 400" DURATION=10 ROUNDS=1 bench/cluster.sh
#
# Besides the nodes' CPU, it reads the broker's and PostgreSQL's (the
# postmaster and its backends) from /proc, for the per-message costs that
# docs/deploy.md's sizing table is computed from. The summary gives, per
# setup, the highest rate whose median p99 stays under 50 ms.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
RATES=${RATES:-"300 500 700 900"}
ROUNDS=${ROUNDS:-3}
CLIENTS=${CLIENTS:-5000}
ROOMS=${ROOMS:-50}
OUT=${OUT:-reports/cluster}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PY=${PY:-python3}
. scripts/lib.sh
ulimit -n "$(ulimit -Hn)"
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"
cargo build --release --quiet -p volley
VOLLEY="$TARGET/release/volley"
PG_BIN=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
pids=()
work=$(mktemp -d)
chmod 755 "$work"  # PostgreSQL runs as the postgres user below it
cleanup() {
  for pid in "${pids[@]}"; do kill -9 "$pid" 2>/dev/null || true; done
  if [ -f "$work/pg/data/postmaster.pid" ]; then runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null 2>&1 || true; fi
  rm -rf "$work"
}
trap cleanup EXIT

start_postgres() {
  rm -rf "$work/pg"; mkdir -p "$work/pg"; chown -R postgres:postgres "$work/pg"
  runuser -u postgres -- "$PG_BIN/initdb" -A trust -U volley --no-sync -D "$work/pg/data" >/dev/null
  pg_port=$(free_port)
  runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg/data" -w -l "$work/pg/log" \
    -o "-p $pg_port -c listen_addresses=127.0.0.1 -k $work/pg -c max_connections=200" start >/dev/null
  STORE="postgres://volley@127.0.0.1:$pg_port/postgres"
}

# CPU seconds (in clock ticks) of a process list.
ticks_of() { for p in "$@"; do awk '{print $14+$15}' "/proc/$p/stat" 2>/dev/null || echo 0; done | paste -sd+ | bc; }
pg_pids() { local main; main=$(head -1 "$work/pg/data/postmaster.pid"); echo "$main" $(pgrep -P "$main"); }

stop_postgres() { runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$work/pg/data" -m immediate stop >/dev/null; }

start_broker() {
  broker_port=$(free_port)
  case "$1" in
    memory) BROKER=memory; broker_pid= ;;
    redis) redis-server --port "$broker_port" --bind 127.0.0.1 --save '' --appendonly no >/dev/null & broker_pid=$!
           BROKER="redis://127.0.0.1:$broker_port"; wait_port "$broker_port" ;;
    nats) nats-server -a 127.0.0.1 -p "$broker_port" >/dev/null 2>&1 & broker_pid=$!
          BROKER="nats://127.0.0.1:$broker_port"; wait_port "$broker_port" ;;
  esac
  if [ -n "$broker_pid" ]; then pids+=("$broker_pid"); fi
}

# name | nodes | broker
SETUPS=("1 node|1|memory" "3 nodes, Redis|3|redis" "3 nodes, NATS|3|nats")
for round in $(seq 1 "$ROUNDS"); do
for entry in "${SETUPS[@]}"; do
  IFS='|' read -r name nodes broker <<<"$entry"
  for rate in $RATES; do
    start_postgres
    start_broker "$broker"
    urls=(); node_pids=()
    for n in $(seq 1 "$nodes"); do
      port=$(free_port)
      RUST_LOG=warn "$VOLLEY" serve --addr "127.0.0.1:$port" --node-id "n$n" --store "$STORE" --broker "$BROKER" \
        --data-dir "$work/data$n" --max-connections-per-ip 0 --account-attempts-per-sec 0 >"$OUT/serve-$n.log" 2>&1 &
      node_pids+=($!); pids+=($!)
      wait_port "$port"
      urls+=("ws://127.0.0.1:$port/ws")
    done
    url=$(IFS=,; echo "${urls[*]}")
    # CPU of the nodes, the broker and PostgreSQL every half second, so the
    # costs below cover the measured window only, not the set-up of the clients.
    (while :; do
      echo "$(date +%s.%N) $(ticks_of "${node_pids[@]}") $(if [ -n "$broker_pid" ]; then ticks_of "$broker_pid"; else echo 0; fi) $(ticks_of $(pg_pids))"
      sleep 0.5
    done) >"$work/samples" 2>/dev/null &
    sampler=$!
    cpu_before=$(ticks_of "${node_pids[@]}")
    broker_before=$(if [ -n "$broker_pid" ]; then ticks_of "$broker_pid"; else echo 0; fi)
    pg_before=$(ticks_of $(pg_pids))
    echo "round $round: $name at $rate/s"
    report=$("$VOLLEY" bench chat --url "$url" -n "$CLIENTS" -r "$ROOMS" -p "$rate" -d "$DURATION" --warmup 3 \
      --connect-concurrency 128 --json) || report=null
    ended=$(date +%s.%N)
    kill "$sampler" 2>/dev/null; wait "$sampler" 2>/dev/null || true
    # The last DURATION seconds before the generator finished: its window.
    window=$(awk -v end="$ended" -v d="$DURATION" -v t="$(getconf CLK_TCK)" '
      $1 <= end - d { n0=$2; b0=$3; p0=$4; t0=$1 } { n1=$2; b1=$3; p1=$4; t1=$1 }
      END { printf "{\"secs\":%.2f,\"node_cpu_s\":%.3f,\"broker_cpu_s\":%.3f,\"pg_cpu_s\":%.3f}", t1-t0, (n1-n0)/t, (b1-b0)/t, (p1-p0)/t }' "$work/samples")
    cpu_after=$(ticks_of "${node_pids[@]}")
    broker_after=$(if [ -n "$broker_pid" ]; then ticks_of "$broker_pid"; else echo 0; fi)
    pg_after=$(ticks_of $(pg_pids))
    metrics=$(curl -s "$(echo "${urls[0]}" | sed 's#^ws://#http://#; s#/ws$#/metrics#')")
    published=$(echo "$metrics" | awk '/^volley_broker_published_total/ {s+=$NF} END {print s+0}')
    messages=$(echo "$metrics" | awk '/^volley_messages_total/ {s+=$NF} END {print s+0}')
    for p in "${node_pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    if [ -n "$broker_pid" ]; then kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; fi
    stop_postgres
    ticks=$(getconf CLK_TCK)
    secs() { printf '%.3f' "$(echo "($2-$1)/$ticks" | bc -l)"; }
    printf '{"round":%s,"name":"%s","rate":%s,"members":%s,"node_cpu_s":%s,"broker_cpu_s":%s,"pg_cpu_s":%s,"window":%s,"node1_published":%s,"node1_messages":%s,"report":%s}\n' \
      "$round" "$name" "$rate" "$((CLIENTS / ROOMS))" "$(secs "$cpu_before" "$cpu_after")" "$(secs "$broker_before" "$broker_after")" \
      "$(secs "$pg_before" "$pg_after")" "$window" "$published" "$messages" "$report" >>"$OUT/results.jsonl"
  done
done
done

"$PY" - "$OUT/results.jsonl" <<'PY' | tee "$OUT/summary.md"
import json, sys, statistics
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = defaultdict(list)
for r in rows:
    groups[(r["name"], r["rate"])].append(r)
med = lambda xs: statistics.median(xs) if xs else float("nan")
print("| setup | publish rate | rounds | deliveries/s | delivered | p50 ms | p99 ms | ack p99 ms | node CPU µs/delivery (window) | broker CPU µs/message (window) | PostgreSQL CPU µs/message (window) | broker msgs per stored msg (node 1) | errors |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|---|")
best = {}
for (name, rate), rs in groups.items():
    ok = [r for r in rs if r["report"]]
    if not ok:
        print(f"| {name} | {rate}/s | {len(rs)} | failed | | | | | | | | | |")
        continue
    def m(f):
        return med([f(r) for r in ok])
    ops = m(lambda r: r["report"]["ops"])
    # CPU seconds per second in the measured window, over deliveries per second there.
    win = lambda r, k: r["window"][k] / max(r["window"]["secs"], 0.1)
    per_sec = lambda r: max(r["report"]["ops_per_sec"], 1)
    p99 = m(lambda r: (r["report"].get("latency") or {}).get("p99_us", 0) / 1000)
    delivered = m(lambda r: (r["report"].get("extra") or {}).get("delivery_ratio", 0))
    dps = m(lambda r: r["report"]["ops_per_sec"])
    errors = sum(r["report"]["errors"] for r in ok)
    if p99 < 50 and delivered > 0.999 and errors == 0 and dps > best.get(name, (0,))[0]:
        best[name] = (dps, rate, p99)
    print(f"| {name} | {rate}/s | {len(ok)} | {dps:,.0f} | {delivered*100:.1f}% "
          f"| {m(lambda r: (r['report'].get('latency') or {}).get('p50_us', 0)/1000):.1f} | {p99:.1f} "
          f"| {m(lambda r: (r['report'].get('extra') or {}).get('ack_p99_ms', 0)):.1f} "
          f"| {m(lambda r: win(r, 'node_cpu_s') * 1e6 / per_sec(r)):.1f} "
          f"| {m(lambda r: win(r, 'broker_cpu_s') * 1e6 / per_sec(r) * r['members']):.1f} "
          f"| {m(lambda r: win(r, 'pg_cpu_s') * 1e6 / per_sec(r) * r['members']):.1f} "
          f"| {m(lambda r: r['node1_published'] / r['node1_messages'] if r['node1_messages'] else float('nan')):.2f} | {errors} |")
print()
base = best.get("1 node", (0,))[0]
for name, (dps, rate, p99) in best.items():
    ratio = f", {dps / base:.2f}x one node" if base else ""
    print(f"- {name}: highest measured rate with median p99 under 50 ms and everything delivered: {rate}/s, {dps:,.0f} deliveries/s (p99 {p99:.1f} ms){ratio}")
PY
