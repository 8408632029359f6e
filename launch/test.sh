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
exec "$venv/bin/python" -m pytest "$@"
