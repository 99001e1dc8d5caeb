#!/usr/bin/env bash
# Set up everything Lyra needs on a fresh machine: a virtualenv with pinned packages, the
# Jupyter kernel, a warm numba cache for vectorbt, and (for browser tests) Debian's Chromium.
# Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

PY=${PYTHON:-python3}
if ! "$PY" -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else 1)'; then
  echo "error: Lyra needs Python >= 3.11 (found $("$PY" --version 2>&1)); set PYTHON=..." >&2
  exit 2
fi
if [ ! -x .venv/bin/python ]; then
  echo "==> creating .venv"
  "$PY" -m venv .venv
fi

stamp=.venv/.lyra-installed
want=$(cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
  echo "==> installing Python packages (pinned by constraints.txt)"
  .venv/bin/python -m pip install -q --disable-pip-version-check --upgrade pip setuptools wheel
  .venv/bin/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[dev]'
  echo "$want" > "$stamp"
fi

# Notebooks run on this environment's kernel, named python3 inside the venv.
if [ ! -f .venv/share/jupyter/kernels/python3/kernel.json ]; then
  .venv/bin/python -m ipykernel install --sys-prefix --name python3 --display-name "Python 3 (lyra)" >/dev/null
fi

# vectorbt compiles with numba on first use (~1 min); do it once here, into numba's on-disk cache
# (next to vectorbt's sources in .venv), which every notebook kernel and pytest worker then loads.
# Redone when the warm-up script or the pinned packages change.
warm_want=$(cat scripts/warm_numba.py constraints.txt | sha256sum | cut -d' ' -f1)
if [ ! -f .venv/.numba-warm ] || [ "$(cat .venv/.numba-warm)" != "$warm_want" ]; then
  echo "==> warming vectorbt's numba cache"
  if .venv/bin/python scripts/warm_numba.py; then
    echo "$warm_want" > .venv/.numba-warm
  else
    echo "warning: numba warm-up failed; tests will compile on first use (slower)" >&2
  fi
fi

# Browser tests drive Debian's Chromium with Playwright.
if [ "${LYRA_SKIP_BROWSER:-0}" != "1" ] && [ ! -x /usr/bin/chromium ]; then
  echo "==> installing Debian's chromium for browser tests"
  if [ "$(id -u)" = "0" ]; then
    (apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q chromium >/dev/null; })
  else
    (sudo apt-get install -y -q chromium >/dev/null 2>&1 || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q chromium >/dev/null; })
  fi
fi

# Alert rules are checked and unit-tested with promtool, and one test scrapes a session with a
# real Prometheus: both come from Debian's prometheus package (its service is not needed).
if [ "${LYRA_SKIP_PROMETHEUS:-0}" != "1" ] && [ ! -x /usr/bin/promtool ]; then
  echo "==> installing Debian's prometheus (promtool) for the alert-rule tests"
  if [ "$(id -u)" = "0" ]; then
    (apt-get install -y -q prometheus >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q prometheus >/dev/null; })
  else
    (sudo apt-get install -y -q prometheus >/dev/null 2>&1 || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q prometheus >/dev/null; })
  fi
fi
# `lyra backup` on PostgreSQL homes uses pg_dump / pg_restore from the client tools.
if [ "${LYRA_SKIP_PG_CLIENT:-0}" != "1" ] && ! command -v pg_dump >/dev/null 2>&1; then
  echo "==> installing PostgreSQL's client tools (pg_dump) for backups"
  if [ "$(id -u)" = "0" ]; then
    (apt-get install -y -q postgresql-client >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q postgresql-client >/dev/null; })
  else
    (sudo apt-get install -y -q postgresql-client >/dev/null 2>&1 || { sudo apt-get update -q >/dev/null && sudo apt-get install -y -q postgresql-client >/dev/null; })
  fi
fi
echo "==> setup done"
