#!/usr/bin/env bash
# Install what the tests need, then run them all:
#   style (rustfmt, clippy), unit + property + integration tests,
#   and the Autobahn conformance suite in both modes.
# Works on a fresh machine with the Rust toolchain and Python 3.
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "test tools (Python venv with kosoku)"
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/pip install --quiet --disable-pip-version-check 'kosoku==0.1.0'

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy --all-targets -D warnings"
cargo clippy --workspace --all-targets --quiet -- -D warnings

step "cargo test (unit, property, integration)"
cargo test --workspace --quiet

step "conformance: Autobahn|Testsuite via kosoku, both modes"
./scripts/conformance.sh

step "all tests passed"
