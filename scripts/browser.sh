#!/usr/bin/env bash
# Browser end-to-end tests of `volley serve`'s web clients (chat, game; chat over HTTPS, HTTP/2 and HTTP/3) in headless
# Chromium (Debian's chromium, driven by playwright-core from npm).
# Installs chromium and redis-server (apt) and playwright-core (npm ci) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ]; then
  apt-get update -qq && apt-get install -y -qq chromium >/dev/null
fi
if ! command -v redis-server >/dev/null; then
  apt-get update -qq && apt-get install -y -qq redis-server >/dev/null
fi
(cd web/tests && npm ci --no-audit --no-fund --silent)
cargo build --quiet -p volley
bin="${CARGO_TARGET_DIR:-$PWD/target}/debug/volley"
VOLLEY_BIN="$bin" node web/tests/chat.e2e.mjs
VOLLEY_BIN="$bin" node web/tests/game.e2e.mjs
VOLLEY_BIN="$bin" node web/tests/game_cluster.e2e.mjs
VOLLEY_BIN="$bin" node web/tests/https.e2e.mjs
VOLLEY_BIN="$bin" node web/tests/cluster.e2e.mjs
