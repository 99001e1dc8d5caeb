#!/usr/bin/env bash
# Set up, then run a lane of the test suite in parallel (pytest-xdist, --dist loadgroup):
#   full (default; `make test`, what CI runs): ruff, mypy, then every test, on SQLite and on the
#         PostgreSQL server, with subprocesses, the browser and the notebooks;
#   fast (`make test-fast`, the edit loop): every package's tests except the slow, subprocess,
#         browser, notebook and postgres ones (the tiers are described in tests/conftest.py).
# More arguments go to pytest: `bash scripts/test.sh fast tests/unit/feeds -x`.
# LYRA_TEST_WORKERS sets the number of workers (default 4: on 2 cores most tests wait on
# subprocesses, servers and the database, so 4 workers beat 2).
set -euo pipefail
cd "$(dirname "$0")/.."

lane=full
if [ $# -gt 0 ] && { [ "$1" = full ] || [ "$1" = fast ]; }; then
  lane=$1
  shift
fi
bash scripts/setup.sh
workers=(-n "${LYRA_TEST_WORKERS:-4}")

if [ "$lane" = fast ]; then
  echo "==> pytest (fast lane)"
  exec .venv/bin/python -m pytest -q -p no:randomly "${workers[@]}" \
    -m "not (slow or subprocess or browser or notebook or postgres)" "$@"
fi

# PostgreSQL: the team deployment. Start the local server if it is not running.
if ! pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then
  echo "==> starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  for _ in $(seq 1 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
export LYRA_TEST_PG_URL=${LYRA_TEST_PG_URL:-postgresql+psycopg://postgres@127.0.0.1:5432/postgres}

echo "==> ruff"
.venv/bin/ruff check lyra apps tests benchmarks
echo "==> mypy"
.venv/bin/mypy lyra
echo "==> pytest (everything)"
.venv/bin/python -m pytest -q -p no:randomly "${workers[@]}" --durations=20 "$@"
