#!/usr/bin/env bash
# The alert engine's "no stall" scenarios, in a loop: graceful restart, SIGKILL then a fresh
# worker, and a rebalance 1 -> 2 -> 3 workers and back (tests/integration/test_alert_restart.py).
#
#   tests/loops/alert_stall.sh [RUNS] [SCENARIO]   # default 20 runs of all three; needs the
#                                                  # services (make services-start)
#
# SCENARIO (`graceful`, `kill` or `rebalance`, a pytest -k expression) runs one scenario only, so
# that three loops can run side by side. Each run is one pytest session on the real Kafka and
# TimescaleDB. The script stops at the first failing run (its log and its workers' logs are
# kept) and exits non-zero; otherwise it prints, per scenario, how many runs passed in a row and their durations
# (min / median / max). Logs: $ALERT_STALL_LOGS (default: a temporary folder); each run's pytest
# output is run-N.log and its workers' logs are under run-N/ (FLEETPULSE_TEST_WORKER_LOGLEVEL sets
# their level, default here: info). ALERT_STALL_KEEP_GOING=1 runs every run and counts failures.
# CI=true is set: a service that is absent fails the run instead of skipping it (a skip is no pass).
set -uo pipefail

runs="${1:-20}"
only="${2:-}"
root="$(cd "$(dirname "$0")/../.." && pwd)"
logs="${ALERT_STALL_LOGS:-$(mktemp -d -t alert-stall.XXXXXX)}"
keep_going="${ALERT_STALL_KEEP_GOING:-0}"
export FLEETPULSE_TEST_WORKER_LOGLEVEL="${FLEETPULSE_TEST_WORKER_LOGLEVEL:-info}"
mkdir -p "$logs"
cd "$root"
failed=0
began=$(date +%s)
for i in $(seq 1 "$runs"); do
  start=$(date +%s)
  if CI=true timeout 1800 .venv/bin/python -m pytest -q -p no:cacheprovider tests/integration/test_alert_restart.py \
      ${only:+-k "$only"} --basetemp "$logs/run-$i" --junitxml "$logs/run-$i.xml" >"$logs/run-$i.log" 2>&1; then
    echo "run $i/$runs passed in $(( $(date +%s) - start )) s: $(tail -n 1 "$logs/run-$i.log")"
  else
    failed=$((failed + 1))
    echo "run $i/$runs FAILED after $(( $(date +%s) - start )) s (log: $logs/run-$i.log, workers: $logs/run-$i/)"
    grep -E "^(FAILED|ERROR)|timed out waiting|worker died" "$logs/run-$i.log" | head -n 10
    if [ "$keep_going" != "1" ]; then
      break
    fi
  fi
done
echo "load: $(uptime)"
echo "wall time: $(( $(date +%s) - began )) s"
# Per scenario: runs passed (in a row from the first), and the durations of the passing runs.
.venv/bin/python - "$logs" "$runs" <<'PY'
import statistics
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

logs, runs = Path(sys.argv[1]), int(sys.argv[2])
scenarios: dict[str, list[tuple[int, bool, float]]] = {}
for i in range(1, runs + 1):
    path = logs / f"run-{i}.xml"
    if not path.exists():
        continue
    for case in ET.parse(path).getroot().iter("testcase"):
        ok = not any(child.tag in ("failure", "error", "skipped") for child in case)
        scenarios.setdefault(case.get("name", "?"), []).append((i, ok, float(case.get("time", 0))))
for name, results in scenarios.items():
    in_a_row = 0
    for _, ok, _ in results:
        if not ok:
            break
        in_a_row += 1
    passed = [t for _, ok, t in results if ok]
    spread = (
        f"{min(passed):.0f} / {statistics.median(passed):.0f} / {max(passed):.0f} s" if passed else "-"
    )
    failures = [i for i, ok, _ in results if not ok]
    print(
        f"{name}: {len(passed)}/{len(results)} passed, {in_a_row} in a row; "
        f"durations min / median / max {spread}" + (f"; failed in runs {failures}" if failures else "")
    )
PY
if [ "$failed" -gt 0 ]; then
  echo "$failed failing run(s)"
  exit 1
fi
echo "$runs of $runs runs passed in a row (logs: $logs)"
