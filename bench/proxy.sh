#!/usr/bin/env bash
# WebSocket proxies side by side (docs/benchmarks.md, "Proxies"): the same
# `volley echo` backend, the same generator (`volley bench echo`), reached
# directly and through `volley proxy` (layer 7 and layer 4), HAProxy (mode
# http and mode tcp) and nginx. Each proxy gets one core: pinned to core 1
# with one thread (VOLLEY_THREADS=1, HAProxy `nbthread 1`, nginx one worker
# and no master); backend and generator share core 0, the same for every
# row, the direct one included. Binary messages of SIZES bytes over 1 and
# 1,000 connections; round trips/s, p50/p99, and the proxy's CPU per round
# trip (the efficiency figure when core 0 is the ceiling). ROUNDS rounds
# (0: the memory part only),
# alternating the proxies; the table shows medians. Then each proxy's memory
# per idle proxied WebSocket (IDLE connections; two descriptors each, under
# the machine's 20,000). Results: reports/proxy/.
#
#   bench/proxy.sh                       # about 12 minutes
#   ROUNDS=1 DURATION=3 IDLE=2000 bench/proxy.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
IDLE=${IDLE:-8000}
SIZES=${SIZES:-64 16384}
CONNS=${CONNS:-1 1000}
OUT=${OUT:-reports/proxy}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PY=${PY:-python3}
. scripts/lib.sh
mkdir -p "$OUT/nginx"
rm -f "$OUT/results.jsonl" "$OUT/idle.jsonl"
touch "$OUT/results.jsonl"
command -v haproxy >/dev/null || { apt-get update -qq && apt-get install -y -qq haproxy; }
command -v nginx >/dev/null || { apt-get update -qq && apt-get install -y -qq nginx; }
cargo build --release --quiet -p volley
VOLLEY="$TARGET/release/volley"

echo_port=$(free_port)
VOLLEY_THREADS=1 taskset -c 0 "$VOLLEY" echo --addr "127.0.0.1:$echo_port" --no-deflate >"$OUT/echo.log" 2>&1 &
echo_pid=$!
trap 'kill $echo_pid 2>/dev/null || true' EXIT
wait_port "$echo_port"

# Start proxy $1 on port $2 in front of the backend; prints its pid.
start_proxy() {
  local kind=$1 port=$2
  case $kind in
    volley-l7|volley-l4)
      local mode=http; [ "$kind" = volley-l4 ] && mode=tcp
      cat >"$OUT/volley-proxy.toml" <<EOF
listen = "127.0.0.1:$port"
backends = ["127.0.0.1:$echo_port"]
mode = "$mode"
max_connections = 19000
max_connections_per_ip = 0
handshake_rate = 0
access_log = false
[health]
kind = "tcp"
EOF
      RUST_LOG=warn VOLLEY_THREADS=1 taskset -c 1 "$VOLLEY" proxy --config "$OUT/volley-proxy.toml" >"$OUT/$kind.log" 2>&1 &
      echo $!
      ;;
    haproxy-http|haproxy-tcp)
      local mode=http; [ "$kind" = haproxy-tcp ] && mode=tcp
      cat >"$OUT/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 9000
defaults
    mode $mode
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout tunnel 1h
frontend fe
    bind 127.0.0.1:$port
    default_backend be
backend be
    server echo 127.0.0.1:$echo_port
EOF
      taskset -c 1 haproxy -db -f "$OUT/haproxy.cfg" >"$OUT/$kind.log" 2>&1 &
      echo $!
      ;;
    nginx)
      cat >"$OUT/nginx/nginx.conf" <<EOF
daemon off;
master_process off;
worker_processes 1;
worker_rlimit_nofile 19500;
pid $PWD/$OUT/nginx/nginx.pid;
error_log $PWD/$OUT/nginx/error.log warn;
events { worker_connections 18000; }
http {
    access_log off;
    client_body_temp_path $PWD/$OUT/nginx/body;
    proxy_temp_path $PWD/$OUT/nginx/proxy;
    fastcgi_temp_path $PWD/$OUT/nginx/fastcgi;
    uwsgi_temp_path $PWD/$OUT/nginx/uwsgi;
    scgi_temp_path $PWD/$OUT/nginx/scgi;
    map \$http_upgrade \$connection_upgrade { default upgrade; '' close; }
    upstream be { server 127.0.0.1:$echo_port; }
    server {
        listen 127.0.0.1:$port;
        location / {
            proxy_pass http://be;
            proxy_http_version 1.1;
            proxy_set_header Upgrade \$http_upgrade;
            proxy_set_header Connection \$connection_upgrade;
            proxy_read_timeout 1h;
            proxy_buffering off;
        }
    }
}
EOF
      taskset -c 1 nginx -p "$PWD/$OUT/nginx" -c "$PWD/$OUT/nginx/nginx.conf" >"$OUT/$kind.log" 2>&1 &
      echo $!
      ;;
  esac
}

PROXIES=(direct volley-l7 volley-l4 haproxy-http haproxy-tcp nginx)
for round in $(seq 1 "$ROUNDS"); do
  for kind in "${PROXIES[@]}"; do
    if [ "$kind" = direct ]; then
      port=$echo_port; pid=$echo_pid
    else
      port=$(free_port)
      pid=$(start_proxy "$kind" "$port")
      wait_port "$port"
    fi
    for size in $SIZES; do
      for conns in $CONNS; do
        echo "round $round: $kind, $conns connections, $size B"
        report=$(VOLLEY_THREADS=1 taskset -c 0 "$VOLLEY" bench echo --url "ws://127.0.0.1:$port/" \
          -c "$conns" -s "$size" -d "$DURATION" --warmup 1 --server-pid "$pid" --json) || report=null
        printf '{"round":%s,"proxy":"%s","size":%s,"conns":%s,"report":%s}\n' \
          "$round" "$kind" "$size" "$conns" "$report" >>"$OUT/results.jsonl"
      done
    done
    if [ "$kind" != direct ]; then kill "$pid"; wait "$pid" 2>/dev/null || true; fi
  done
done

for kind in volley-l7 volley-l4 haproxy-http nginx; do
  port=$(free_port)
  pid=$(start_proxy "$kind" "$port")
  wait_port "$port"
  echo "idle memory: $kind, $IDLE WebSockets"
  report=$(taskset -c 0 "$VOLLEY" bench idle --url "ws://127.0.0.1:$port/" -n "$IDLE" --server-pid "$pid" --json) || report=null
  kill "$pid"; wait "$pid" 2>/dev/null || true
  printf '{"proxy":"%s","report":%s}\n' "$kind" "$report" >>"$OUT/idle.jsonl"
done

"$PY" - "$OUT/results.jsonl" "$OUT/idle.jsonl" <<'PY' | tee "$OUT/summary.md"
import json, sys, statistics
from collections import defaultdict
rows = [json.loads(l) for l in open(sys.argv[1])]
groups = defaultdict(list)
for r in rows:
    if r["report"]:
        groups[(r["size"], r["conns"], r["proxy"])].append(r["report"])
cases = sorted({(s, c) for s, c, _ in groups})
print("| case | proxy | rounds | round trips/s | vs HAProxy (http) | p50 µs (+ over direct) | p99 µs (+ over direct) | proxy CPU µs per round trip | errors |")
print("|---|---|---|---|---|---|---|---|---|")
for size, conns in cases:
    med = {}
    for (s, c, p), reps in groups.items():
        if (s, c) != (size, conns):
            continue
        m = lambda f: statistics.median(f(r) for r in reps)
        med[p] = dict(n=len(reps), rate=m(lambda r: r["ops_per_sec"]), p50=m(lambda r: r["latency"]["p50_us"]),
                      p99=m(lambda r: r["latency"]["p99_us"]), cpu=m(lambda r: r.get("server_cpu_us_per_op") or 0),
                      errors=sum(r["errors"] for r in reps))
    d = med.get("direct")
    ha = med.get("haproxy-http")
    for p in ["direct", "volley-l7", "volley-l4", "haproxy-http", "haproxy-tcp", "nginx"]:
        if p not in med:
            continue
        x = med[p]
        vs = f"{x['rate'] / ha['rate']:.2f}x" if ha else ""
        add = lambda k: f"{x[k]:,.0f}" + (f" (+{x[k] - d[k]:,.0f})" if d and p != "direct" else "")
        cpu = "(backend)" if p == "direct" else f"{x['cpu']:.1f}"
        print(f"| {size} B x {conns} | {p} | {x['n']} | {x['rate']:,.0f} | {vs} | {add('p50')} | {add('p99')} | {cpu} | {x['errors']} |")
print()
print("| proxy | idle WebSockets held | proxy memory per WebSocket | errors |")
print("|---|---|---|---|")
for line in open(sys.argv[2]):
    r = json.loads(line)
    rep = r["report"]
    if not rep:
        print(f"| {r['proxy']} | failed | | |")
        continue
    mem = (rep.get("server_memory") or {}).get("bytes_per_connection")
    mem = f"{mem / 1024:.1f} KiB" if mem is not None else "n/a"
    print(f"| {r['proxy']} | {rep['ops']} | {mem} | {rep['errors']} |")
PY
