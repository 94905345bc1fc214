#!/usr/bin/env bash
# Install what the tests need, then run them all:
#   style (rustfmt, clippy), unit + property + integration tests,
#   the Autobahn conformance suite in both modes, and interop with
#   independent WebSocket implementations.
# Works on a fresh machine with the Rust toolchain and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools (Python venv: kosoku, websockets; Node.js ws)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check 'kosoku==0.1.0' 'websockets>=14,<16'

step "servers the tests start (Debian: postgresql, redis-server, nats-server)"
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || missing+=(nats-server)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "no import cycles between modules"
python3 scripts/module_cycles.py

step "cargo test (unit, property, integration)"
cargo test --workspace --quiet

step "conformance: Autobahn|Testsuite via kosoku, both modes"
./scripts/conformance.sh

step "interop: Python websockets and Node.js ws, ws:// and wss://, compressed and not"
./scripts/interop.sh

step "browser: the chat and game web clients in headless Chromium (two tabs each; reload; server restart)"
./scripts/browser.sh

step "volley bench: a short run of each scenario"
./scripts/bench_smoke.sh

step "all tests passed"
