#!/usr/bin/env bash
# The alert engine's "no stall" scenarios, in a loop: graceful restart, SIGKILL then a fresh
# worker, and a rebalance 1 -> 2 -> 3 workers and back (tests/integration/test_alert_restart.py).
#
#   tests/loops/alert_stall.sh [RUNS]        # default 20; needs the services (make services-start)
#
# Each run is one pytest session of the three scenarios on the real Kafka and TimescaleDB. The
# script stops at the first failing run (its log is kept) and exits non-zero; otherwise it prints
# how many runs passed in a row. Logs: $ALERT_STALL_LOGS (default: a temporary folder).
set -uo pipefail

runs="${1:-20}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
logs="${ALERT_STALL_LOGS:-$(mktemp -d -t alert-stall.XXXXXX)}"
mkdir -p "$logs"
cd "$root"
passed=0
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if timeout 900 .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_alert_restart.py \
      >"$logs/run-$i.log" 2>&1; then
    passed=$((passed + 1))
    echo "run $i/$runs passed in $(( $(date +%s) - start )) s: $(tail -n 1 "$logs/run-$i.log")"
  else
    echo "run $i/$runs FAILED after $(( $(date +%s) - start )) s (log: $logs/run-$i.log)"
    tail -n 30 "$logs/run-$i.log"
    echo "$passed of $runs runs passed in a row before the failure"
    exit 1
  fi
done
echo "$passed of $runs runs passed in a row (logs: $logs)"
