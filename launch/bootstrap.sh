#!/usr/bin/env bash
# Creates (once) the project's virtual environment in .venv with the pinned versions of
# constraints.txt, and installs the package with the extras the default job and the tests
# need. Safe to re-run: it only reinstalls when setup.cfg or constraints.txt changed.
#
#   PRIMUS_PYTHON=python3.12 bash launch/bootstrap.sh     # another interpreter
#   PRIMUS_EXTRAS=text,hapt bash launch/bootstrap.sh      # fewer extras
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${PRIMUS_VENV:-$repo/.venv}"
python="${PRIMUS_PYTHON:-python3}"
extras="${PRIMUS_EXTRAS:-text,hapt,plots,video,test}"
stamp="$venv/.primus-installed"
want="$(cat "$repo/setup.cfg" "$repo/constraints.txt" | sha256sum | cut -c1-16)-$extras"

if [[ ! -x "$venv/bin/python" ]]; then
  echo "[bootstrap] creating $venv with $("$python" --version 2>&1)" >&2
  "$python" -m venv "$venv"
fi
if [[ ! -f "$stamp" || "$(cat "$stamp")" != "$want" ]]; then
  echo "[bootstrap] installing primus_jax[$extras] (pinned by constraints.txt)" >&2
  "$venv/bin/python" -m pip install --quiet --upgrade pip
  # torch first and exactly pinned: anything that merely depends on torch would otherwise
  # resolve a CUDA build of several GB.
  if [[ ",$extras," == *",text,"* || ",$extras," == *",torch,"* ]]; then
    "$venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" "torch==2.13.0"
  fi
  "$venv/bin/python" -m pip install --quiet -c "$repo/constraints.txt" -e "$repo[$extras]"
  echo "$want" > "$stamp"
fi
