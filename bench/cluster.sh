#!/usr/bin/env bash
# Chat on one node vs three nodes (docs/benchmarks.md, "Chat on several
# nodes"): `volley bench chat` with clients spread over the nodes, every
# node on one PostgreSQL and one broker (Redis, then NATS), all on this
# machine with the load generator. Each node and service is started here on
# free ports and stopped at the end. Results: reports/cluster/.
#
#   bench/cluster.sh                          # about 6 minutes
#   RATES="200 400" DURATION=10 bench/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15}
RATES=${RATES:-"200 400 600"}
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
    cpu_before=$(for p in "${node_pids[@]}"; do awk '{print $14+$15}' "/proc/$p/stat"; done | paste -sd+ | bc)
    echo "$name at $rate/s"
    report=$("$VOLLEY" bench chat --url "$url" -n "$CLIENTS" -r "$ROOMS" -p "$rate" -d "$DURATION" --warmup 3 \
      --connect-concurrency 128 --json) || report=null
    cpu_after=$(for p in "${node_pids[@]}"; do awk '{print $14+$15}' "/proc/$p/stat"; done | paste -sd+ | bc)
    metrics=$(curl -s "$(echo "${urls[0]}" | sed 's#^ws://#http://#; s#/ws$#/metrics#')")
    published=$(echo "$metrics" | awk '/^volley_broker_published_total/ {s+=$NF} END {print s+0}')
    messages=$(echo "$metrics" | awk '/^volley_messages_total/ {s+=$NF} END {print s+0}')
    for p in "${node_pids[@]}"; do kill "$p"; wait "$p" 2>/dev/null || true; done
    if [ -n "$broker_pid" ]; then kill "$broker_pid"; wait "$broker_pid" 2>/dev/null || true; fi
    stop_postgres
    ticks=$(getconf CLK_TCK)
    printf '{"name":"%s","rate":%s,"node_cpu_s":%s,"node1_published":%s,"node1_messages":%s,"report":%s}\n' \
      "$name" "$rate" "$(printf '%.3f' "$(echo "($cpu_after-$cpu_before)/$ticks" | bc -l)")" "$published" "$messages" "$report" >>"$OUT/results.jsonl"
  done
done

"$PY" - "$OUT/results.jsonl" <<'PY' | tee "$OUT/summary.md"
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print("| setup | publish rate | deliveries/s | delivered | p50 ms | p99 ms | ack p99 ms | node CPU µs/delivery | broker msgs per room msg (node 1) | errors |")
print("|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    rep = r["report"]
    if not rep:
        print(f"| {r['name']} | {r['rate']}/s | failed | | | | | | | |")
        continue
    lat = rep.get("latency") or {}
    extra = rep.get("extra") or {}
    cpu_per = r["node_cpu_s"] * 1e6 / rep["ops"] if rep["ops"] else float("nan")
    ratio = r["node1_published"] / r["node1_messages"] if r["node1_messages"] else float("nan")
    print(f"| {r['name']} | {r['rate']}/s | {rep['ops_per_sec']:,.0f} | {extra.get('delivery_ratio', 0)*100:.1f}% "
          f"| {lat.get('p50_us', 0)/1000:.1f} | {lat.get('p99_us', 0)/1000:.1f} | {extra.get('ack_p99_ms', 0):.1f} "
          f"| {cpu_per:.1f} | {ratio:.2f} | {rep['errors']} |")
PY
