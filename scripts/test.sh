#!/usr/bin/env bash
# Set up and run the whole test suite: lint, types, and pytest on SQLite and PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh

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
echo "==> pytest"
.venv/bin/python -m pytest -q -p no:randomly "$@"
