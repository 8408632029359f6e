#!/usr/bin/env bash
# The project's test command: lint, format check and the whole pytest suite (8 fake CPU
# devices). Bootstraps .venv on first use.   bash launch/test.sh [pytest args]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/launch/bootstrap.sh"
venv="${PRIMUS_VENV:-$repo/.venv}"
cd "$repo"
"$venv/bin/ruff" check .
"$venv/bin/ruff" format --check .
# Two pytest workers (pytest-xdist) by default; PRIMUS_TEST_WORKERS=0 runs in one process.
exec "$venv/bin/python" -m pytest -n "${PRIMUS_TEST_WORKERS:-2}" "$@"
