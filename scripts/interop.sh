#!/usr/bin/env bash
# Interop with implementations nobody here wrote, over ws:// and wss://,
# compressed and not:
#   Python `websockets` and Node.js `ws` clients against `volley echo`;
#   Node.js's http2 module and Python's h2 (extended CONNECT, RFC 8441)
#   against `volley echo` and `volley serve`;
#   Python's aioquic (HTTP/3 extended CONNECT, RFC 9220) against `volley echo`;
#   volley's client against `websockets` and `ws` echo servers.
# Every exchange checks payloads byte for byte and the echoed close code.
# Expects the venv made by scripts/test.sh (websockets installed) and npm.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PY="$VENV/bin/python"
. scripts/lib.sh
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-reports/interop}
rm -rf "$OUT"
mkdir -p "$OUT"

(cd interop/node && npm ci --no-audit --no-fund --silent)
cargo build --release --bin volley -p volley --quiet
cargo build --release -p volley-net --example interop_client --quiet
VOLLEY="$TARGET/release/volley"
CLIENT="$TARGET/release/examples/interop_client"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT

start() { # start NAME PORT CMD...: run a server in the background, wait for its port
  local name=$1 port=$2; shift 2
  "$@" >"$OUT/$name.log" 2>&1 &
  pids+=($!)
  wait_port "$port"
}

"$VOLLEY" dev-cert --cert "$OUT/cert.pem" --key "$OUT/key.pem" >/dev/null
CA=(--ca "$OUT/cert.pem")

passed=0
failed=0
check() { # check NAME CMD...
  local name=$1; shift
  if timeout 60 "$@" >"$OUT/$name.out" 2>&1; then
    passed=$((passed + 1)); echo "  pass  $name"
  else
    failed=$((failed + 1)); echo "  FAIL  $name: $(tail -3 "$OUT/$name.out" | tr '\n' ' ')"
  fi
}

echo "peer clients -> volley echo"
ws_port=$(free_port); start volley-ws "$ws_port" "$VOLLEY" echo --addr "127.0.0.1:$ws_port"
wss_port=$(free_port); start volley-wss "$wss_port" "$VOLLEY" echo --addr "127.0.0.1:$wss_port" --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem"
for scheme in ws wss; do
  port=$ws_port; [ $scheme = wss ] && port=$wss_port
  url="$scheme://localhost:$port/"
  for mode in plain deflate; do
    flag=(); [ $mode = deflate ] && flag=(--deflate)
    check "python-client-$scheme-$mode" "$PY" interop/python/client.py "$url" "${flag[@]}" "${CA[@]}"
    check "node-client-$scheme-$mode" node interop/node/client.mjs "$url" "${flag[@]}" "${CA[@]}"
  done
done

echo "peer HTTP/2 clients -> volley echo and volley serve (RFC 8441, TLS, ALPN h2)"
check "node-http2-client-echo" node interop/node/h2_echo.mjs "https://localhost:$wss_port" "${CA[@]}"
h2_port=$(free_port)
start volley-serve-h2 "$h2_port" "$VOLLEY" serve --addr "127.0.0.1:$h2_port" --data-dir "$OUT/serve-data" \
  --tls-cert "$OUT/cert.pem" --tls-key "$OUT/key.pem"
check "node-http2-client-chat-and-game" node interop/node/h2_client.mjs "https://localhost:$h2_port" "${CA[@]}"
check "python-h2-client-echo" "$PY" interop/python/h2_echo.py localhost "$wss_port" "${CA[@]}"

echo "peer HTTP/3 client -> volley echo (RFC 9220, QUIC on the same port number)"
check "python-aioquic-client-echo" "$PY" interop/python/h3_echo.py localhost "$wss_port" "${CA[@]}"

echo "volley client -> peer echo servers"
for peer in python node; do
  for scheme in ws wss; do
    port=$(free_port)
    tls=(); [ $scheme = wss ] && tls=(--cert "$OUT/cert.pem" --key "$OUT/key.pem")
    if [ $peer = python ]; then
      start "$peer-server-$scheme" "$port" "$PY" interop/python/echo_server.py "$port" "${tls[@]}"
    else
      start "$peer-server-$scheme" "$port" node interop/node/echo_server.mjs "$port" "${tls[@]}"
    fi
    for mode in plain deflate; do
      flag=(); [ $mode = deflate ] && flag=(--deflate)
      check "volley-client-to-$peer-$scheme-$mode" "$CLIENT" "$scheme://localhost:$port/" "${flag[@]}" "${CA[@]}"
    done
  done
done

echo "interop: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
