#!/usr/bin/env bash
# The HAProxy and nginx configurations of deploy/ in front of two real
# `volley serve` nodes, each proxy on free ports with its own nodes:
#   - the configuration loads (haproxy -c, nginx -t);
#   - chat (`volley bench chat`) and game (`volley bench game`) traffic
#     through the proxy, every message delivered, no errors, over plain
#     HTTP and over TLS ended at the proxy;
#   - room affinity: requests naming the same `?room=` reach one node, and
#     rooms spread over both;
#   - HAProxy: the nodes see the real client address (PROXY v2), and a node
#     killed with -9 is taken out by the health checks: requests go to the
#     other node;
#   - the game across nodes (the nodes share a real Redis): bots play
#     through the proxy, the node running their match is stopped (SIGTERM),
#     the match moves to the other node and every bot takes its seat back
#     there through the proxy (`?node=`): no seat lost, pause under 1 s.
# Installs haproxy, nginx (Debian's 2.6 and 1.22) and redis-server when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-reports/proxies}
rm -rf "$OUT"
mkdir -p "$OUT"
if ! command -v haproxy >/dev/null || ! command -v nginx >/dev/null || ! command -v redis-server >/dev/null; then
  apt-get update -qq && apt-get install -y -qq haproxy nginx redis-server >/dev/null
fi
cargo build --release --quiet --bin volley -p volley
VOLLEY="$TARGET/release/volley"
PY=${PY:-python3}

pids=()
declare -A pid_of
cleanup() {
  # TERM first: nginx's master takes its workers with it only when asked.
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  sleep 0.5
  for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done
}
trap cleanup EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"

node() { # node NAME PORT EXTRA...: a volley serve node on SQLite in $OUT/NAME, the game shared over Redis
  local name=$1 port=$2; shift 2
  # One token secret for all: any node takes any node's seat tokens.
  VOLLEY_TOKEN_SECRET="proxies.sh shared secret" RUST_LOG=warn "$VOLLEY" serve --addr "127.0.0.1:$port" --node-id "$name" --data-dir "$OUT/$name" \
    --account-attempts-per-sec 0 --broker "redis://127.0.0.1:$redis_port" "$@" >>"$OUT/$name.log" 2>&1 &
  pids+=($!)
  pid_of[$name]=$!
  disown
  wait_port "$port"
}

check() { # check NAME JSON CONDITION
  if "$PY" - "$2" "$3" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
ok = eval(sys.argv[2], {}, {"r": r})
print(f"  {r['scenario']:<6} {r['ops']} {r['unit']}, errors {r['errors']}: {'ok' if ok else 'FAILED'}")
sys.exit(0 if ok else 1)
PY
  then :; else echo "proxies: $1 failed"; exit 1; fi
}

node_of() { # node_of PORT [QUERY]: the x-volley-node of GET /healthz through the proxy
  curl -s -D - -o /dev/null "http://127.0.0.1:$1/healthz${2:-}" | tr -d '\r' | sed -n 's/^x-volley-node: //p'
}

affinity() { # affinity NAME PORT: each ?room= keeps one node; 16 rooms use both
  local seen="" room n
  for room in $(seq 1 16); do
    n=$(node_of "$2" "?room=r$room")
    for _ in 1 2 3; do
      [ "$(node_of "$2" "?room=r$room")" = "$n" ] || { echo "proxies: $1: room r$room moved"; exit 1; }
    done
    seen="$seen $n"
  done
  [ "$(echo "$seen" | tr ' ' '\n' | sort -u | grep -c .)" = 2 ] || { echo "proxies: $1: rooms on$seen"; exit 1; }
  echo "  affinity: each ?room= on one node, 16 rooms over both"
}

migrate() { # migrate NAME PROXY_PORT: bots play through the proxy; their match's node is stopped
  local name=$1 listen=$2 holder=""
  "$VOLLEY" bench game --url "ws://127.0.0.1:$listen/game/ws" -n 8 -d 6 --warmup 1 --json >"$OUT/$name-migrate.json" &
  local bench=$!
  sleep 3
  # Any node answers with the whole registry (asked through the proxy).
  holder=$(curl -s "http://127.0.0.1:$listen/api/game/nodes" | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
print(next((n["node"] for n in r["nodes"] if any(m["humans"] > 0 for m in n["matches"])), ""))')
  [ -n "$holder" ] || { echo "proxies: $name: no node runs the bots' match"; exit 1; }
  kill -TERM "${pid_of[$holder]}"
  wait "$bench"
  check "$name game migration" "$OUT/$name-migrate.json" \
    'r["errors"] == 0 and r["extra"]["seats_lost"] == 0 and r["extra"]["migrations"] >= 1 and r["extra"]["longest_pause_ms"] < 1000'
  "$PY" - "$OUT/$name-migrate.json" "$holder" <<'PY'
import json, sys
e = json.load(open(sys.argv[1]))["extra"]
print(f"  game: {sys.argv[2]} stopped under 8 bots: {e['migrations']:.0f} moved, {e['seats_lost']:.0f} seats lost, longest pause {e['longest_pause_ms']:.0f} ms")
PY
  migrated=$holder
}

"$VOLLEY" dev-cert --cert "$OUT/cert.pem" --key "$OUT/key.pem" >/dev/null
cat "$OUT/cert.pem" "$OUT/key.pem" >"$OUT/haproxy.pem"

traffic() { # traffic NAME PROXY_PORT METRICS_ADDR TLS_PORT: chat (plain and TLS) and game through the proxy
  "$VOLLEY" bench chat --url "ws://127.0.0.1:$2/ws" -n 100 -r 4 -p 100 -d 3 --warmup 1 --json >"$OUT/$1-chat.json"
  check "$1 chat" "$OUT/$1-chat.json" 'r["ops"] > 0 and r["errors"] == 0 and r["extra"]["delivery_ratio"] == 1.0'
  "$VOLLEY" bench chat --url "wss://localhost:$4/ws" --ca "$OUT/cert.pem" -n 40 -r 2 -p 50 -d 2 --warmup 1 --json >"$OUT/$1-chat-tls.json"
  check "$1 chat over TLS" "$OUT/$1-chat-tls.json" 'r["ops"] > 0 and r["errors"] == 0 and r["extra"]["delivery_ratio"] == 1.0'
  "$VOLLEY" bench game --url "ws://127.0.0.1:$2/game/ws" --metrics-addr "$3" -n 20 -d 3 --warmup 1 --json >"$OUT/$1-game.json"
  check "$1 game" "$OUT/$1-game.json" 'r["errors"] == 0 and r["extra"]["snapshots_per_bot_per_s"] > 20'
}

echo "HAProxy $(haproxy -v | head -1 | cut -d' ' -f3) with deploy/haproxy/volley.cfg"
a=$(free_port); b=$(free_port); listen=$(free_port); tls_listen=$(free_port)
node ha-a "$a" --proxy-protocol --trusted-proxies 127.0.0.1
node ha-b "$b" --proxy-protocol --trusted-proxies 127.0.0.1
export VOLLEY_LISTEN="127.0.0.1:$listen" NODE_A="127.0.0.1:$a" NODE_B="127.0.0.1:$b" NODE_A_ID=ha-a NODE_B_ID=ha-b
export VOLLEY_TLS_LISTEN="127.0.0.1:$tls_listen" VOLLEY_TLS_PEM="$PWD/$OUT/haproxy.pem"
haproxy -c -q -f deploy/haproxy/volley.cfg
haproxy -db -f deploy/haproxy/volley.cfg >"$OUT/haproxy.log" 2>&1 &
pids+=($!)
wait_port "$listen"
first=""
for _ in $(seq 1 50); do first=$(node_of "$listen"); [ -n "$first" ] && break; sleep 0.1; done
[ -n "$first" ] || { echo "proxies: nothing answers through HAProxy"; exit 1; }
# Every client here is 127.0.0.1: source hashing sends them all to one node;
# its /metrics is read through the proxy (the node sees the loopback client
# by PROXY v2, so it answers).
traffic haproxy "$listen" "127.0.0.1:$listen" "$tls_listen"
affinity haproxy "$listen"
# The node counted the real client (127.0.0.1 from the PROXY header, on a
# connection that came from HAProxy): a header-less connection from the
# trusted address is refused, so an answer proves the header was there.
echo "  PROXY v2: node $first answered through HAProxy"
migrate haproxy "$listen"
# Back up, for the next check; HAProxy takes it in after two good checks.
if [ "$migrated" = ha-a ]; then node ha-a "$a" --proxy-protocol --trusted-proxies 127.0.0.1; else node ha-b "$b" --proxy-protocol --trusted-proxies 127.0.0.1; fi
first=""
for _ in $(seq 1 100); do first=$(node_of "$listen"); [ -n "$first" ] && break; sleep 0.1; done
sleep 2.5
first=$(node_of "$listen")
kill -9 "${pid_of[$first]}"
# Within 10 s (checks every second, two failures out): answers from the other.
for _ in $(seq 1 100); do
  got=$(node_of "$listen")
  [ -n "$got" ] && [ "$got" != "$first" ] && break
  sleep 0.1
done
for _ in 1 2 3 4 5; do
  got=$(node_of "$listen")
  [ -n "$got" ] && [ "$got" != "$first" ] || { echo "proxies: after kill -9 of $first, got '$got'"; exit 1; }
done
echo "  kill -9 of $first: the health checks took it out; requests go to $got"

echo "nginx $(nginx -v 2>&1 | cut -d/ -f2) with deploy/nginx/volley.conf"
a=$(free_port); b=$(free_port); listen=$(free_port); tls_listen=$(free_port)
node node-a "$a" --max-connections-per-ip 0
node node-b "$b" --max-connections-per-ip 0
conf="$OUT/nginx.conf"
{
  echo "daemon off; worker_processes 1; pid $PWD/$OUT/nginx.pid; error_log $PWD/$OUT/nginx-error.log warn;"
  echo "events { worker_connections 4096; }"
  echo "http { access_log off; client_body_temp_path $PWD/$OUT/nginx-tmp; proxy_temp_path $PWD/$OUT/nginx-tmp;"
  sed -e "s/127.0.0.1:8081/127.0.0.1:$a/" -e "s/127.0.0.1:8082/127.0.0.1:$b/" -e "s/127.0.0.1:8080/127.0.0.1:$listen/" \
    -e "s/127.0.0.1:8443/127.0.0.1:$tls_listen/" -e "s|/etc/nginx/volley/fullchain.pem|$PWD/$OUT/cert.pem|" \
    -e "s|/etc/nginx/volley/privkey.pem|$PWD/$OUT/key.pem|" deploy/nginx/volley.conf
  echo "}"
} >"$conf"
mkdir -p "$OUT/nginx-tmp"
nginx -t -q -c "$PWD/$conf" -p "$PWD/$OUT"
nginx -c "$PWD/$conf" -p "$PWD/$OUT" >"$OUT/nginx.log" 2>&1 &
pids+=($!)
wait_port "$listen"
first=$(node_of "$listen")
[ -n "$first" ] || { echo "proxies: nothing answers through nginx"; exit 1; }
# nginx adds X-Forwarded-For, so the node keeps /metrics from proxied
# clients: the game's tick time is read from the node directly.
port_of_first=$a; [ "$first" = node-b ] && port_of_first=$b
traffic nginx "$listen" "127.0.0.1:$port_of_first" "$tls_listen"
affinity nginx "$listen"
migrate nginx "$listen"
echo "proxies: HAProxy and nginx passed"
