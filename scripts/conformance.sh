#!/usr/bin/env bash
# Run the whole Autobahn|Testsuite (via kosoku) in both modes:
#   fuzzingclient: kosoku drives `volley echo`;
#   fuzzingserver: kosoku serves the cases and volley's client runs them.
# Fails on any case that is not OK, NON-STRICT or INFORMATIONAL.
# Expects the venv made by scripts/test.sh (or VENV=path).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
KOSOKU="$VENV/bin/kosoku"
PY="$VENV/bin/python"
. scripts/lib.sh
OUT=${OUT:-reports}
EXPECT_CASES=517
# Every case, compression (12.*, 13.*) included, must pass.
ALLOW=()

cargo build --release --bin volley -p volley >/dev/null 2>&1 || cargo build --release --bin volley -p volley
cargo build --release -p volley-net --example autobahn_client >/dev/null 2>&1 || cargo build --release -p volley-net --example autobahn_client
TARGET=${CARGO_TARGET_DIR:-target}
rm -rf "$OUT"
mkdir -p "$OUT"

pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; }
trap cleanup EXIT


status=0

# 1. fuzzingclient: kosoku against volley echo.
port=$(free_port)
# Threshold 0: kosoku 0.1.0 fails to hash uncompressed echoes inside the
# compression cases (a Python 3 port bug), so the echo compresses everything.
RUST_LOG=warn "$TARGET/release/volley" echo --addr "127.0.0.1:$port" --deflate-threshold 0 >"$OUT/echo-server.log" 2>&1 &
pids+=($!)
wait_port "$port"
# kosoku exits non-zero when any case is not OK (UNIMPLEMENTED included); the
# summary below applies the real rules.
timeout 600 "$KOSOKU" -m fuzzingclient -p 4 -o "$OUT/clients" "127.0.0.1:$port" >"$OUT/fuzzingclient.log" 2>&1 || true
"$PY" scripts/autobahn_summary.py "$OUT/clients/index.json" --label "server (fuzzingclient vs volley echo)" --expect $EXPECT_CASES "${ALLOW[@]}" || status=1

# 2. fuzzingserver: volley's client against kosoku.
port=$(free_port)
timeout 600 "$KOSOKU" -m fuzzingserver -o "$OUT/servers" "127.0.0.1:$port" >"$OUT/fuzzingserver.log" 2>&1 &
kpid=$!
pids+=($kpid)
wait_port "$port"
timeout 900 "$TARGET/release/examples/autobahn_client" "ws://127.0.0.1:$port" 4 >"$OUT/client.log" 2>&1 || { echo "autobahn client failed:"; tail -5 "$OUT/client.log"; status=1; }
wait "$kpid" || true
"$PY" scripts/autobahn_summary.py "$OUT/servers/index.json" --label "client (fuzzingserver vs volley client)" --expect $EXPECT_CASES "${ALLOW[@]}" || status=1

exit $status
