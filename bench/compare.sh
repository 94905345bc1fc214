#!/usr/bin/env bash
# volley beside the best Rust WebSocket peers, under the same load, in one run.
#
#   bench/compare.sh            # 3 rounds, 5 s per throughput run (about 7 min)
#   ROUNDS=5 DURATION=10 bench/compare.sh
#
# Every server runs pinned to core 0 with one tokio worker; the load
# generator runs pinned to core 1. Echo is measured twice, by `volley bench`
# (one worker) and by bench/wsload/wsload.c, a C epoll client that shares no
# code with volley, so no figure depends on our own client. For each
# scenario the servers alternate (A B C D, A B C D, ...) for ROUNDS rounds, each
# run on a freshly started server; the table shows medians and how volley
# compares with each peer. Results: reports/bench/ (results.jsonl,
# comparison.json, comparison.md, comparison.svg).
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-5}
IDLE_CONNS=${IDLE_CONNS:-10000}
OUT=${OUT:-reports/bench}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
SERVERS=(${SERVERS:-volley volley-uring tokio-tungstenite fastwebsockets tokio-websockets})

ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
command -v taskset >/dev/null || { echo "taskset (util-linux) is needed" >&2; exit 1; }
mkdir -p "$OUT"
rm -f "$OUT/results.jsonl"

echo "building volley and the peers (release)..."
cargo build --release --quiet -p volley
cargo build --release --quiet --manifest-path bench/peers/Cargo.toml --target-dir "$TARGET"
# volley's codec over io_uring (an experiment, see bench/uring/src/main.rs).
cargo build --release --quiet --manifest-path bench/uring/Cargo.toml --target-dir "$TARGET"
VOLLEY="$TARGET/release/volley"
PEER="$TARGET/release/peer-echo"
WSLOAD="$TARGET/release/wsload"
gcc -O2 -o "$WSLOAD" bench/wsload/wsload.c

. scripts/lib.sh

# io_uring with DEFER_TASKRUN needs Linux 6.1 and no seccomp filter against
# it (Docker's default profile blocks io_uring): without it, leave it out.
if [[ " ${SERVERS[*]} " == *" volley-uring "* ]] && ! "$TARGET/release/uring-echo" --check 2>/dev/null; then
  echo "io_uring is not available here: volley-uring left out" >&2
  SERVERS=("${SERVERS[@]/volley-uring/}")
fi

server_pid=
start_server() { # start_server NAME PORT
  if [ "$1" = volley ]; then
    RUST_LOG=error VOLLEY_THREADS=1 taskset -c 0 "$VOLLEY" echo --addr "127.0.0.1:$2" --no-deflate >/dev/null 2>&1 &
  elif [ "$1" = volley-uring ]; then
    taskset -c 0 "$TARGET/release/uring-echo" "127.0.0.1:$2" >/dev/null 2>&1 &
  else
    VOLLEY_THREADS=1 taskset -c 0 "$PEER" "$1" "127.0.0.1:$2" >/dev/null 2>&1 &
  fi
  server_pid=$!
  wait_port "$2"
}
stop_server() { kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; }
trap stop_server EXIT

# case name | volley bench arguments (wsload-*: wsload's CONNS SIZE)
CASES=(
  "echo-64x64B|echo -c 64 -s 64 -d $DURATION"
  "wsload-echo-64x64B|64 64"
  "echo-64x16KiB|echo -c 64 -s 16384 -d $DURATION"
  "wsload-echo-64x16KiB|64 16384"
  "latency-1x64B|echo -c 1 -s 64 -d $DURATION"
  "wsload-latency-1x64B|1 64"
  "idle-${IDLE_CONNS}|idle -n $IDLE_CONNS --settle 2"
  "connect|connect -c 16 -d $DURATION"
)

for entry in "${CASES[@]}"; do
  name=${entry%%|*}
  args=${entry#*|}
  for round in $(seq 1 "$ROUNDS"); do
    for server in "${SERVERS[@]}"; do
      [ -n "$server" ] || continue
      # The io_uring experiment is measured on echo only (it keeps a 64 KiB
      # receive buffer per connection and has no idle or connect tuning).
      if [ "$server" = volley-uring ] && [[ $name == idle-* || $name == connect ]]; then
        continue
      fi
      port=$(free_port)
      start_server "$server" "$port"
      if [[ $name == wsload-* ]]; then
        # shellcheck disable=SC2086
        report=$(taskset -c 1 "$WSLOAD" 127.0.0.1 "$port" $args "$DURATION" 1 "$server_pid") || report='null'
      else
        # shellcheck disable=SC2086
        report=$(VOLLEY_THREADS=1 taskset -c 1 "$VOLLEY" bench $args --url "ws://127.0.0.1:$port/" --server-pid "$server_pid" --json) || report='null'
      fi
      stop_server
      printf '{"case":"%s","server":"%s","round":%d,"report":%s}\n' "$name" "$server" "$round" "$report" >>"$OUT/results.jsonl"
      printf '  %-16s round %d  %-18s done\n' "$name" "$round" "$server"
    done
  done
done

python3 bench/compare.py "$OUT/results.jsonl" --json "$OUT/comparison.json" --markdown "$OUT/comparison.md"
"$VOLLEY" bench plot --input "$OUT/comparison.json" --output "$OUT/comparison.svg"
