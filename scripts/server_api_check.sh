#!/usr/bin/env bash
# The server API against its OpenAPI document (docs/openapi.yaml), by
# Schemathesis: a real `volley serve` with an API key holding every scope,
# a room to aim at, then generated requests (valid and not) on every
# operation. Checks: no 5xx, every status and content type documented, every
# body matching its schema.
#
#   scripts/server_api_check.sh target/debug/volley
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib.sh
VOLLEY=${1:-target/debug/volley}
ST=${ST:-.venv/bin/schemathesis}
OUT=${OUT:-reports/server-api}
PY=${PY:-python3}
rm -rf "$OUT"
mkdir -p "$OUT"
port=$(free_port)
key=$(head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n')
VOLLEY_API_KEYS="schema:$key:publish+history+presence+rooms+users" RUST_LOG=warn \
  "$VOLLEY" serve --addr "127.0.0.1:$port" --data-dir "$OUT/data" >"$OUT/serve.log" 2>&1 &
pid=$!
trap 'kill $pid 2>/dev/null || true' EXIT
wait_port "$port"
# Room 1 exists, so generated ids hit a real room as well as missing ones.
curl -sf -X POST "http://127.0.0.1:$port/api/server/rooms" -H "Authorization: ApiKey $key" \
  -H 'content-type: application/json' -d '{"name":"schema"}' >/dev/null
"$ST" run docs/openapi.yaml --url "http://127.0.0.1:$port" -H "Authorization: ApiKey $key" \
  --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance \
  --max-examples "${EXAMPLES:-60}" --seed 1 --no-color >"$OUT/schemathesis.log" 2>&1 || {
  tail -60 "$OUT/schemathesis.log"
  echo "server API: Schemathesis found problems (full log: $OUT/schemathesis.log)"
  exit 1
}
tail -12 "$OUT/schemathesis.log"
if ! kill -0 "$pid" 2>/dev/null; then
  echo "server API: the server died under the generated requests"
  exit 1
fi
echo "server API: every operation of docs/openapi.yaml conforms"
