#!/usr/bin/env bash
# The JavaScript client package (clients/js, @volley/client): its type
# declarations build with `tsc --noEmit` (typescript from npm, pinned in the
# package's lockfile), and its tests (Node's test runner) pass against a
# real `volley serve`.
#
#   scripts/js_client.sh [PATH_TO_VOLLEY]
set -euo pipefail
cd "$(dirname "$0")/.."
VOLLEY_BIN=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/volley}")
export VOLLEY_BIN
cd clients/js
npm ci --no-audit --no-fund --silent
npx tsc --noEmit -p .
echo "  tsc --noEmit: the declarations build"
# Node 20 has WebSocket behind a flag (on by default from Node 22).
flag=""
node -e 'process.exit(typeof WebSocket === "function" ? 0 : 1)' 2>/dev/null || flag="--experimental-websocket"
node --test $flag test/
