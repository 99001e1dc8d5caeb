#!/usr/bin/env bash
# Run the formerly flaky tests COUNT times each (default 20) while a CPU hog keeps every core
# busy — the proof that they no longer depend on machine speed (issue #15). Prints the tally.
#   bash scripts/flaky_under_load.sh            # the tests below, 20 times each
#   COUNT=5 bash scripts/flaky_under_load.sh tests/integration/feeds/test_live_fake.py
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh >/dev/null
export LYRA_TEST_PG_URL=${LYRA_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}

tests=("$@")
select=()
if [ ${#tests[@]} -eq 0 ]; then
  select=(-k "not sqlite")  # the kill-all test: its PostgreSQL case was the flaky one
  tests=(
    "tests/integration/session/test_kill_switch_sessions.py::test_kill_all_stops_both_sessions_and_survives_restart"
    "tests/integration/feeds/test_live_fake.py::test_stale_alarm_fires_once_when_the_venue_goes_quiet"
    "tests/integration/feeds/test_live_fake.py::test_100_forced_disconnects_lose_and_duplicate_nothing"
    "tests/integration/feeds/test_live_fake.py::test_sequence_gaps_and_malformed_messages_are_repaired"
  )
fi

# The hog: one busy Python loop per core, for as long as the tests run.
hogs=()
for _ in $(seq 1 "$(nproc)"); do
  python3 -c 'while True: pass' &
  hogs+=($!)
done
trap 'kill "${hogs[@]}" 2>/dev/null || true' EXIT
echo "==> $(nproc) busy loops running; load: $(cut -d' ' -f1-3 /proc/loadavg)"

start=$(date +%s)
status=0
.venv/bin/python -m pytest -q -p no:randomly -n "${LYRA_TEST_WORKERS:-2}" --dist=load \
  --count="${COUNT:-20}" "${select[@]}" "${tests[@]}" || status=$?
echo "==> $(( $(date +%s) - start )) s under load; load at the end: $(cut -d' ' -f1-3 /proc/loadavg)"
exit $status
