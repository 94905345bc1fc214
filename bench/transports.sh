#!/usr/bin/env bash
# WebSockets over HTTP/1.1, HTTP/2 (RFC 8441) and HTTP/3 (RFC 9220) on the
# same `volley echo` over TLS, one port number (docs/benchmarks.md,
# "Transports"): `volley bench echo` with text messages (the same full
# client on every transport, which decodes every echo), C WebSockets each on
# its own TLS connection, then the same C WebSockets as streams of one
# HTTP/2 or HTTP/3 connection, and of C such connections. Server pinned to
# core 0 with one worker, generator to core 1. ROUNDS rounds, alternating
# the setups; the table shows medians. Then server memory per idle WebSocket
# on each transport (`volley bench idle`, IDLE WebSockets; streams spread
# over IDLE/250 connections, under the 200-256 streams a server allows on
# one connection). Then the chat on `volley serve` over each transport.
# Results: reports/transports/.
#
#   bench/transports.sh              # about 8 minutes
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
  "HTTP/3: $CONNS streams on 1 connection|--http3 --h3-connections 1"
  "HTTP/3: $CONNS streams on $CONNS connections|--http3 --h3-connections $CONNS"
)
IDLE=${IDLE:-2000}

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

rm -f "$OUT/idle.jsonl"
per=$(( (IDLE + 249) / 250 ))
for entry in "HTTP/1.1|" "HTTP/2|--http2 --h2-connections $per" "HTTP/3|--http3 --h3-connections $per"; do
  name=${entry%%|*}
  extra=${entry#*|}
  port=$(free_port)
  VOLLEY_THREADS=1 taskset -c 0 "$VOLLEY" echo --addr "127.0.0.1:$port" --no-deflate \
    --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" >"$OUT/echo.log" 2>&1 &
  pid=$!
  wait_port "$port"
  echo "idle memory: $name"
  # shellcheck disable=SC2086
  report=$(taskset -c 1 "$VOLLEY" bench idle --url "wss://localhost:$port/" --ca "$OUT/cert.pem" \
    -n "$IDLE" --server-pid "$pid" --json $extra) || report=null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '{"name":"%s","report":%s}\n' "$name" "$report" >>"$OUT/idle.jsonl"
done

# The chat over each transport: CHAT_CLIENTS clients in 4 rooms, 200
# messages/s in total, on `volley serve` (SQLite) over TLS; streams spread
# over CHAT_CLIENTS/100 connections.
rm -f "$OUT/chat.jsonl"
CHAT_CLIENTS=${CHAT_CLIENTS:-200}
per=$(( (CHAT_CLIENTS + 99) / 100 ))
for entry in "HTTP/1.1|" "HTTP/2|--http2 --h2-connections $per" "HTTP/3|--http3 --h3-connections $per"; do
  name=${entry%%|*}
  extra=${entry#*|}
  port=$(free_port)
  dir=$(mktemp -d)
  RUST_LOG=warn VOLLEY_THREADS=1 taskset -c 0 "$VOLLEY" serve --addr "127.0.0.1:$port" --data-dir "$dir" \
    --max-connections-per-ip 0 --account-attempts-per-sec 0 \
    --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" >"$OUT/serve.log" 2>&1 &
  pid=$!
  wait_port "$port"
  echo "chat: $name"
  # shellcheck disable=SC2086
  report=$(taskset -c 1 "$VOLLEY" bench chat --url "wss://localhost:$port/ws" --ca "$OUT/cert.pem" \
    -n "$CHAT_CLIENTS" -r 4 -p 200 -d "$DURATION" --warmup 2 --server-pid "$pid" --json $extra) || report=null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  rm -rf "$dir"
  printf '{"name":"%s","report":%s}\n' "$name" "$report" >>"$OUT/chat.jsonl"
done

"$PY" - "$OUT/results.jsonl" "$OUT/idle.jsonl" "$OUT/chat.jsonl" <<'PY' | tee "$OUT/summary.md"
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
print()
print("| transport | idle WebSockets | server memory per WebSocket | errors |")
print("|---|---|---|---|")
for line in open(sys.argv[2]):
    r = json.loads(line)
    rep = r["report"]
    if not rep:
        print(f"| {r['name']} | failed | | |")
        continue
    mem = (rep.get("server_memory") or {}).get("bytes_per_connection")
    mem = f"{mem / 1024:.1f} KiB" if mem is not None else "n/a"
    print(f"| {r['name']} ({rep['params'].get('transport')}) | {rep['ops']} | {mem} | {rep['errors']} |")
print()
print("| transport | clients | deliveries/s | p50 ms | p99 ms | server CPU µs per delivery | errors |")
print("|---|---|---|---|---|---|---|")
for line in open(sys.argv[3]):
    r = json.loads(line)
    rep = r["report"]
    if not rep:
        print(f"| {r['name']} | failed | | | | | |")
        continue
    lat = rep.get("latency") or {}
    print(f"| {r['name']} ({rep['params'].get('transport')}) | {rep['params'].get('clients')} | {rep['ops_per_sec']:,.0f} "
          f"| {lat.get('p50_us', 0) / 1000:.1f} | {lat.get('p99_us', 0) / 1000:.1f} | {rep.get('server_cpu_us_per_op') or 0:.1f} | {rep['errors']} |")
PY
