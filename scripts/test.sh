#!/usr/bin/env bash
# Install what the tests need, then run them all:
#   style (rustfmt, clippy, no module cycles), unit + property +
#   integration tests (with real PostgreSQL, Redis and NATS servers started
#   on free ports), the Autobahn conformance suite in both modes, interop
#   with independent WebSocket implementations, the browser end-to-end
#   tests in headless Chromium, a short run of each benchmark scenario, and
#   the HAProxy and nginx configurations of deploy/ with real traffic,
#   and `volley cluster test` (faults injected, every client's history checked).
# Works on a fresh machine with the Rust toolchain and Python 3; each step
# prints how long it took, and the whole run its total.
set -euo pipefail
cd "$(dirname "$0")/.."

started=$SECONDS
step_name=
step_at=$SECONDS
step_done() { if [ -n "$step_name" ]; then printf '    (%s: %ds)\n' "$step_name" $((SECONDS - step_at)); fi; }
step() { step_done; step_name=$*; step_at=$SECONDS; printf '\n==> %s\n' "$*"; }
trap 'step_done; printf "\n==> total: %dm%02ds\n" $(((SECONDS - started) / 60)) $(((SECONDS - started) % 60))' EXIT

step "test tools (Python venv: kosoku, websockets, h2, aioquic, schemathesis; Node.js ws)"
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  apt-get update -qq && apt-get install -y -qq nodejs npm >/dev/null
fi
if ! python3 -c 'import venv, ensurepip' 2>/dev/null; then
  apt-get update -qq && apt-get install -y -qq python3-venv >/dev/null
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check 'kosoku==0.1.0' 'websockets>=14,<16' 'h2>=4.1,<5' 'aioquic>=1.2,<2' 'schemathesis>=4.3,<5'

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

step "every volley command line in README.md and docs/ parses as written"
cargo build --quiet -p volley
python3 scripts/doc_commands.py "${CARGO_TARGET_DIR:-target}/debug/volley"

step "server API: docs/openapi.yaml against a live server (Schemathesis: no 5xx, statuses, content types and bodies as documented)"
./scripts/server_api_check.sh "${CARGO_TARGET_DIR:-target}/debug/volley"

step "conformance: Autobahn|Testsuite via kosoku, both modes"
./scripts/conformance.sh

step "interop: Python websockets and Node.js ws (ws://, wss://, compressed and not); HTTP/2 (Node http2, Python h2) and HTTP/3 (aioquic)"
./scripts/interop.sh

step "browser: the chat and game web clients in headless Chromium (two tabs each; reload; server restart; HTTPS over HTTP/2 and HTTP/3)"
./scripts/browser.sh

step "clients/js (@volley/client): tsc --noEmit, and its tests against a real server"
./scripts/js_client.sh "${CARGO_TARGET_DIR:-target}/debug/volley"

step "volley bench: a short run of each scenario"
./scripts/bench_smoke.sh

step "volley cluster test: chat and game through the proxy under kill -9, SIGSTOP, broker restarts and cut links, over Redis and NATS; the checker's verdict"
./scripts/cluster_check.sh "${CARGO_TARGET_DIR:-target}/debug/volley"

step "proxies: deploy/ HAProxy and nginx configurations with chat and game traffic (plain and TLS), room affinity, health checks, PROXY v2"
./scripts/proxies.sh

step "deploy/: systemd units (verify, security), Prometheus config and alerts (promtool), dashboard metrics against a live node and proxy"
command -v promtool >/dev/null || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null; }
python3 scripts/deploy_check.py "${CARGO_TARGET_DIR:-target}/debug/volley"

step "all tests passed"
