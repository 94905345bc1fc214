#!/usr/bin/env bash
# `volley cluster test` as CI runs it: the whole deployment (PostgreSQL,
# three nodes, volley proxy) over Redis and then over NATS, chat and game
# workloads through the proxy for 60 s while the nemesis kills and
# restarts nodes, pauses one, restarts the broker and cuts links; then the
# checker's verdict. Each run's report is printed into the log (the
# build's artifact) and kept under reports/cluster-ci-<broker>/.
#
#   scripts/cluster_check.sh [PATH_TO_VOLLEY]
#   DURATION=120s SEED=$(date +%s) scripts/cluster_check.sh   # another schedule
set -euo pipefail
cd "$(dirname "$0")/.."
VOLLEY=$(realpath "${1:-${CARGO_TARGET_DIR:-target}/debug/volley}")
DURATION=${DURATION:-60s}
SEED=${SEED:-3}
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v redis-server >/dev/null || missing+=(redis-server)
[ -x /usr/sbin/nats-server ] || command -v nats-server >/dev/null || missing+=(nats-server)
if [ ${#missing[@]} -gt 0 ]; then
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi
status=0
for broker in redis nats; do
  report=reports/cluster-ci-$broker
  echo "--- volley cluster test over $broker (seed $SEED, $DURATION)"
  if ! RUST_LOG=warn RUST_BACKTRACE=0 "$VOLLEY" cluster test --workload both --faults kill,pause,broker-restart,cut \
      --duration "$DURATION" --broker "$broker" --seed "$SEED" --report "$report"; then
    status=1
    echo "--- the cluster's logs ($report/cluster/logs), last lines"
    for log in "$report"/cluster/logs/*.log; do echo "== $log"; tail -n 20 "$log"; done
  fi
  echo "--- $report/report.md"
  cat "$report/report.md"
done
exit $status
