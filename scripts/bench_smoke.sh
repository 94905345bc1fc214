#!/usr/bin/env bash
# Keep `volley bench` working: a 5-second run of each scenario against
# `volley echo`, each checked for real traffic and no errors. Not a benchmark
# (see bench/compare.sh for that).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
. scripts/lib.sh
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-reports/bench-smoke}
mkdir -p "$OUT"
cargo build --release --quiet --bin volley -p volley
VOLLEY="$TARGET/release/volley"

port=$(free_port)
RUST_LOG=warn "$VOLLEY" echo --addr "127.0.0.1:$port" >"$OUT/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true' EXIT
wait_port "$port"
url="ws://127.0.0.1:$port/"

check() { # check NAME JSON-FILE PYTHON-CONDITION
  if "$PY" - "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {}, {"r": r})
print(f"  {r['scenario']:<8} {r['ops']} {r['unit']} ({r['ops_per_sec']:.0f}/s), errors {r['errors']}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
  then :; else echo "bench smoke $1 failed"; exit 1; fi
}

"$VOLLEY" bench echo --url "$url" -c 8 -s 64 -d 4 --warmup 1 --json >"$OUT/echo.json"
check echo "$OUT/echo.json" 'r["ops"] > 0 and r["errors"] == 0 and r["latency"]["samples"] == r["ops"]'
"$VOLLEY" bench echo --url "$url" -c 4 -s 16384 -d 4 --warmup 1 --deflate --json >"$OUT/echo-deflate.json"
check echo-deflate "$OUT/echo-deflate.json" 'r["ops"] > 0 and r["errors"] == 0'
# wsload, the independent C generator bench/compare.sh runs beside ours.
gcc -O2 -Wall -Werror -o "$OUT/wsload" bench/wsload/wsload.c
for size in 64 16384; do
  "$OUT/wsload" 127.0.0.1 "$port" 8 "$size" 2 1 "$server" >"$OUT/wsload-$size.json"
  "$PY" - "$OUT/wsload-$size.json" <<'PY' || { echo "bench smoke wsload $size failed"; exit 1; }
import json, sys
r = json.load(open(sys.argv[1]))
ok = r["ops"] > 0 and r["errors"] == 0 and r["server_cpu_us_per_op"] > 0
print(f"  wsload   {r['ops']} round trips of {r['size']} B ({r['ops_per_sec']:.0f}/s), errors {r['errors']}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
done
"$VOLLEY" bench connect --url "$url" -c 4 -d 5 --json >"$OUT/connect.json"
check connect "$OUT/connect.json" 'r["ops"] > 0 and r["errors"] == 0'
"$VOLLEY" bench idle --url "$url" -n 500 --settle 1 --server-pid "$server" --json >"$OUT/idle.json"
check idle "$OUT/idle.json" 'r["ops"] == 500 and r["errors"] == 0 and r["server_memory"]["rss_after"] > r["server_memory"]["rss_before"]'

# The chat scenario against `volley serve` (persistence on, a fresh data dir).
chat_port=$(free_port)
chat_dir=$(mktemp -d)
RUST_LOG=warn "$VOLLEY" serve --addr "127.0.0.1:$chat_port" --data-dir "$chat_dir" \
  --max-connections-per-ip 0 --account-attempts-per-sec 0 >"$OUT/serve.log" 2>&1 &
chat_server=$!
trap 'kill $server $chat_server 2>/dev/null || true; rm -rf "$chat_dir"' EXIT
wait_port "$chat_port"
"$VOLLEY" bench chat --url "ws://127.0.0.1:$chat_port/ws" -n 200 -r 4 -p 100 -d 4 --warmup 1 --json >"$OUT/chat.json"
check chat "$OUT/chat.json" 'r["ops"] > 0 and r["errors"] == 0 and r["extra"]["delivery_ratio"] == 1.0'

# The game scenario against the same server: 40 bots over WebSockets; every
# bot gets snapshots at (nearly) the tick rate, and the tick time comes from
# the server's /metrics.
"$VOLLEY" bench game --url "ws://127.0.0.1:$chat_port/game/ws" -n 40 -d 4 --warmup 1 --server-pid "$chat_server" --json >"$OUT/game.json"
check game "$OUT/game.json" 'r["errors"] == 0 and r["extra"]["snapshots_per_bot_per_s"] > 20 and r["extra"]["tick_count"] > 60 and r["extra"]["tick_p99_ms"] > 0'

# The same scenarios over HTTP/2 and HTTP/3 streams (TLS; one port number).
"$VOLLEY" dev-cert --cert "$OUT/cert.pem" --key "$OUT/key.pem" >/dev/null
tls_port=$(free_port)
tls_dir=$(mktemp -d)
RUST_LOG=warn "$VOLLEY" serve --addr "127.0.0.1:$tls_port" --data-dir "$tls_dir" --max-connections-per-ip 0 \
  --account-attempts-per-sec 0 --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem" >"$OUT/serve-tls.log" 2>&1 &
tls_server=$!
trap 'kill $server $chat_server $tls_server 2>/dev/null || true; rm -rf "$chat_dir" "$tls_dir"' EXIT
wait_port "$tls_port"
for transport in http2 http3; do
  "$VOLLEY" bench chat --url "wss://localhost:$tls_port/ws" --ca "$OUT/cert.pem" --$transport -n 50 -r 2 -p 50 -d 3 \
    --warmup 1 --json >"$OUT/chat-$transport.json"
  check "chat-$transport" "$OUT/chat-$transport.json" 'r["ops"] > 0 and r["errors"] == 0 and r["extra"]["delivery_ratio"] == 1.0'
  "$VOLLEY" bench game --url "wss://localhost:$tls_port/game/ws" --ca "$OUT/cert.pem" --$transport -n 10 -d 3 --warmup 1 \
    --json >"$OUT/game-$transport.json"
  check "game-$transport" "$OUT/game-$transport.json" 'r["errors"] == 0 and r["extra"]["snapshots_per_bot_per_s"] > 20'
done
