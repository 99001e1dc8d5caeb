#!/usr/bin/env bash
# Set up and run the main job on the embedded default (SQLite, shipped sample data).
set -euo pipefail
cd "$(dirname "$0")/.."
LYRA_SKIP_BROWSER=1 bash scripts/setup.sh
export LYRA_HOME=${LYRA_HOME:-$PWD/.lyra}
.venv/bin/lyra init
exec .venv/bin/lyra demo "$@"
