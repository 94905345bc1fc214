#!/usr/bin/env bash
# The game on three nodes behind `volley proxy` (docs/benchmarks.md, "The
# game on several nodes"). Redis carries the registry and the hand-offs;
# the nodes run one simulation thread each, rooms of 16, 8 server bots.
#
#  1. Drain under load (ROUNDS rounds): `volley bench game` bots play
#     through the proxy; halfway, the node running the most players is
#     stopped (SIGTERM). Reported: migrations, reconnects, seats lost, the
#     longest pause a bot saw, snapshots per bot per second.
#  2. Placement with one node loaded: LOAD (64) bots pinned to n1
#     (`?node=n1`), then 48 more bots join through the proxy. With the
#     registry (placement by measured tick time) and without it (no broker:
#     each node opens matches where the proxy's round robin puts the
#     joins). Reported: players and matches per node, each node's p99 tick
#     over the window, the bots' input-to-snapshot p99.
#  3. Players per node (STEPS, default 150,300,450,600 in all): rooms of
#     100 and no server bots, bots through the proxy, placement by the
#     registry; reported per step: people and matches per node, each
#     node's p99 tick and overruns, the bots' input-to-snapshot p99; and
#     the most players per node with every node's p99 tick under 10 ms.
#
#   bench/game_cluster.sh                   # about 6 minutes
#   ROUNDS=1 DURATION=6 bench/game_cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${ROUNDS:-3}
DURATION=${DURATION:-10}
OUT=${OUT:-reports/game_cluster}
TARGET=${CARGO_TARGET_DIR:-$PWD/target}
PY=${PY:-python3}
. scripts/lib.sh
rm -rf "$OUT"
mkdir -p "$OUT"
command -v redis-server >/dev/null || { apt-get update -qq && apt-get install -y -qq redis-server; }
cargo build --release --quiet -p volley
VOLLEY="$TARGET/release/volley"

pids=()
cleanup() { for p in "${pids[@]}"; do kill -9 "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save "" --appendonly no >"$OUT/redis.log" 2>&1 &
pids+=($!)
wait_port "$redis_port"

declare -A port_of pid_of
node() { # node NAME [EXTRA...]: a game node; with a broker unless NO_BROKER=1
  local name=$1; shift
  local broker=(--broker "redis://127.0.0.1:$redis_port")
  [ "${NO_BROKER:-0}" = 1 ] && broker=()
  VOLLEY_TOKEN_SECRET="bench/game_cluster.sh shared secret" RUST_LOG=warn "$VOLLEY" serve \
    --addr "127.0.0.1:${port_of[$name]}" --node-id "$name" --data-dir "$OUT/data/$name" \
    --max-connections-per-ip 0 --game-sim-threads 1 \
    --game-room-capacity "${CAPACITY:-16}" --game-bots-per-room "${BOTS:-8}" \
    "${broker[@]}" "$@" >>"$OUT/$name.log" 2>&1 &
  pid_of[$name]=$!
  pids+=($!)
  wait_port "${port_of[$name]}"
}

registry() { curl -s "http://127.0.0.1:${port_of[n1]}/api/game/nodes"; }

wait_nodes() { # wait until n1 knows the three
  for _ in $(seq 1 100); do
    [ "$(registry | "$PY" -c 'import json,sys; print(len(json.load(sys.stdin)["nodes"]))' 2>/dev/null)" = 3 ] && return 0
    sleep 0.1
  done
  echo "the nodes never met" >&2; exit 1
}

start_all() {
  for n in n1 n2 n3; do port_of[$n]=$(free_port); node "$n"; done
  listen=$(free_port)
  # Every bot comes from 127.0.0.1: lift the per-address limits (256
  # connections, 50 handshakes a second) that protect a real deployment.
  printf 'max_connections_per_ip = 0\nhandshake_rate = 0\n' >"$OUT/proxy.toml"
  RUST_LOG=warn "$VOLLEY" proxy --config "$OUT/proxy.toml" --listen "127.0.0.1:$listen" --affinity query:node --health tcp \
    --backend "n1=127.0.0.1:${port_of[n1]}" --backend "n2=127.0.0.1:${port_of[n2]}" \
    --backend "n3=127.0.0.1:${port_of[n3]}" >>"$OUT/proxy.log" 2>&1 &
  proxy_pid=$!
  pids+=($!)
  wait_port "$listen"
}

stop_all() {
  for n in n1 n2 n3; do kill "${pid_of[$n]}" 2>/dev/null || true; done
  kill "$proxy_pid" 2>/dev/null || true
  sleep 1
}

PARTS=${PARTS:-123}
if [[ $PARTS == *1* ]]; then
echo "1. drain under load: 48 bots through volley proxy, the busiest node stopped halfway ($ROUNDS rounds)"
start_all
wait_nodes
for round in $(seq 1 "$ROUNDS"); do
  "$VOLLEY" bench game --url "ws://127.0.0.1:$listen/game/ws" -n 48 -d "$DURATION" --warmup 1 \
    --metrics-addr "127.0.0.1:${port_of[n1]}" --json >"$OUT/drain-$round.json" 2>"$OUT/drain-$round.err" &
  bench=$!
  sleep $((DURATION / 2 + 1))
  busiest=$(registry | "$PY" -c '
import json, sys
r = json.load(sys.stdin)
print(max(r["nodes"], key=lambda n: sum(m["humans"] for m in n["matches"]))["node"])')
  # n1 answers the registry and the bench reads its /metrics: stop another if n1 is the busiest by a tie.
  echo "  round $round: stopping $busiest" >>"$OUT/drain.log"
  kill -TERM "${pid_of[$busiest]}"
  wait "$bench" || true
  echo "$busiest" >"$OUT/drain-$round.stopped"
  # Back, for the next round.
  sleep 1
  node "$busiest"
  wait_nodes
done
stop_all
fi

if [[ $PARTS == *2* ]]; then
echo "2. placement with n1 loaded: ${LOAD:-64} bots pinned to n1, then 48 through the proxy"
place() { # place LABEL: one run; NO_BROKER=1 for round robin
  start_all
  [ "${NO_BROKER:-0}" = 1 ] || wait_nodes
  "$VOLLEY" bench game --url "ws://127.0.0.1:$listen/game/ws?node=n1" -n "${LOAD:-64}" -d $((DURATION + 4)) --warmup 1 \
    --metrics-addr "127.0.0.1:${port_of[n1]}" --json >"$OUT/place-$1-loader.json" 2>/dev/null &
  loader=$!
  sleep 3
  for n in n1 n2 n3; do curl -s "http://127.0.0.1:${port_of[$n]}/metrics" >"$OUT/place-$1-$n-before.prom"; done
  "$VOLLEY" bench game --url "ws://127.0.0.1:$listen/game/ws" -n 48 -d "$DURATION" --warmup 1 \
    --metrics-addr "127.0.0.1:${port_of[n2]}" --json >"$OUT/place-$1.json" 2>"$OUT/place-$1.err"
  for n in n1 n2 n3; do
    curl -s "http://127.0.0.1:${port_of[$n]}/metrics" >"$OUT/place-$1-$n-after.prom"
    curl -s "http://127.0.0.1:${port_of[$n]}/api/game/nodes" >"$OUT/place-$1-$n-nodes.json"
  done
  wait "$loader" || true
  stop_all
}
place registry
NO_BROKER=1 place roundrobin
fi

STEPS=${STEPS:-150,300,450,600}
if [[ $PARTS == *3* ]]; then
echo "3. players per node: $STEPS bots in all through the proxy, rooms of 100, no server bots"
CAPACITY=100 BOTS=0 start_all
wait_nodes
for total in ${STEPS//,/ }; do
  for n in n1 n2 n3; do curl -s "http://127.0.0.1:${port_of[$n]}/metrics" >"$OUT/sweep-$total-$n-before.prom"; done
  "$VOLLEY" bench game --url "ws://127.0.0.1:$listen/game/ws" -n "$total" -d "$DURATION" --warmup 3 \
    --connect-concurrency 16 --metrics-addr "127.0.0.1:${port_of[n1]}" --json >"$OUT/sweep-$total.json" 2>"$OUT/sweep-$total.err" || true
  for n in n1 n2 n3; do curl -s "http://127.0.0.1:${port_of[$n]}/metrics" >"$OUT/sweep-$total-$n-after.prom"; done
  # Let the seats of this step expire (grace 15 s) and its matches close.
  sleep 20
done
stop_all
fi

STEPS="$STEPS" PARTS="$PARTS" "$PY" - "$OUT" "$ROUNDS" <<'PY'
import json, os, sys, statistics, re
out, rounds = sys.argv[1], int(sys.argv[2])
parts = os.environ.get("PARTS", "123")
if "1" in parts:
    print("\n1. drain under load (48 bots, 3 nodes, volley proxy)")
    print(f"{'round':>5} {'stopped':>7} {'migrations':>10} {'reconnects':>10} {'seats lost':>10} {'longest pause ms':>16} {'snapshots/bot/s':>15} {'errors':>6}")
    pauses = []
    for r in range(1, rounds + 1):
        j = json.load(open(f"{out}/drain-{r}.json")); e = j["extra"]
        stopped = open(f"{out}/drain-{r}.stopped").read().strip()
        pauses.append(e["longest_pause_ms"])
        print(f"{r:>5} {stopped:>7} {e['migrations']:>10.0f} {e['reconnects']:>10.0f} {e['seats_lost']:>10.0f} {e['longest_pause_ms']:>16.0f} {e['snapshots_per_bot_per_s']:>15.1f} {j['errors']:>6}")
    print(f"median longest pause: {statistics.median(pauses):.0f} ms")

def buckets(text, name):
    b = {}
    for line in text.splitlines():
        m = re.match(rf'{name}_bucket{{le="([^"]+)"}} (\S+)', line)
        if m:
            b[float("inf") if m.group(1) == "+Inf" else float(m.group(1))] = float(m.group(2))
    return b

def p99(before, after, name):
    a, b = buckets(after, name), buckets(before, name)
    d = sorted((le, a[le] - b.get(le, 0.0)) for le in a)
    total = d[-1][1] if d else 0
    if total <= 0:
        return None
    for le, c in d:
        if c >= 0.99 * total:
            return le * 1e3
    return None

def gauge(text, name):
    return sum(float(l.rsplit(" ", 1)[1]) for l in text.splitlines() if l.startswith(name + " ") or l.startswith(name + "{"))

if "2" in parts:
    print("\n2. placement with n1 loaded (LOAD bots pinned to n1 first, then 48 through the proxy)")
    print(f"{'placement':>11} {'node':>4} {'matches':>7} {'people':>6} {'tick p99 ms':>11}")


    for label in ("registry", "roundrobin"):
        j = json.load(open(f"{out}/place-{label}.json"))
        for n in ("n1", "n2", "n3"):
            before = open(f"{out}/place-{label}-{n}-before.prom").read()
            after = open(f"{out}/place-{label}-{n}-after.prom").read()
            rooms = gauge(after, "volley_game_rooms")
            people = gauge(after, 'volley_game_players{kind="human"}')
            t = p99(before, after, "volley_game_tick_seconds")
            ts = f"{t:.1f}" if t is not None else "-"
            print(f"{label:>11} {n:>4} {rooms:>7.0f} {people:>6.0f} {ts:>11}")
        lat = j["latency"]
        print(f"{'':>11} the 48 bots: {j['extra']['snapshots_per_bot_per_s']:.1f} snapshots/bot/s, input-to-snapshot p50 {lat['p50_us']/1e3:.1f} ms, p99 {lat['p99_us']/1e3:.1f} ms, errors {j['errors']}")

def counter(before, after, name):
    return gauge(after, name) - gauge(before, name)

if "3" in parts:
    print("\n3. players per node (rooms of 100, placement by the registry)")
    print(f"{'bots':>5} {'node':>4} {'matches':>7} {'people':>6} {'tick p99 ms':>11} {'overruns':>8} | {'snap/bot/s':>10} {'in->snap p99 ms':>15} {'errors':>6}")
    best = 0
    for total in [int(t) for t in os.environ.get("STEPS", "150,300,450,600").split(",")]:
        try:
            j = json.load(open(f"{out}/sweep-{total}.json"))
        except (OSError, ValueError):
            print(f"{total:>5} (the bench failed: see sweep-{total}.err)")
            continue
        ok, most = True, 0
        for n in ("n1", "n2", "n3"):
            before = open(f"{out}/sweep-{total}-{n}-before.prom").read()
            after = open(f"{out}/sweep-{total}-{n}-after.prom").read()
            rooms = gauge(after, "volley_game_rooms")
            people = gauge(after, 'volley_game_players{kind="human"}')
            t = p99(before, after, "volley_game_tick_seconds")
            over = counter(before, after, "volley_game_tick_overruns_total")
            ok = ok and (t is None or t < 10.0)
            most = max(most, people)
            ts = f"{t:.1f}" if t is not None else "-"
            tail = ""
            if n == "n1":
                tail = f" | {j['extra']['snapshots_per_bot_per_s']:>10.1f} {j['latency']['p99_us']/1e3:>15.1f} {j['errors']:>6}"
            print(f"{total:>5} {n:>4} {rooms:>7.0f} {people:>6.0f} {ts:>11} {over:>8.0f}{tail}")
        if ok:
            best = max(best, most)
    print(f"most players on one node with every node's p99 tick under 10 ms: {best:.0f}")
PY
