#!/usr/bin/env bash
# Runs the main job on this machine (CPU, or the local GPU/TPU if jax sees one).
# Bootstraps .venv on first use. Any arguments are passed to primus_jax.main:
#
#   bash launch/local.sh                                        # PRIMUS on UCI HAPT (configs/primus_hapt.py)
#   bash launch/local.sh --config=configs/smoke.py --workdir=runs/smoke
#   bash launch/local.sh --config.train.num_steps=500           # override the default's keys
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/launch/bootstrap.sh"
venv="${PRIMUS_VENV:-$repo/.venv}"
cd "$repo"
args=("$@")
[[ " ${args[*]-} " == *" --config="* ]] || args=("--config=configs/primus_hapt.py" "${args[@]}")
[[ " ${args[*]-} " == *" --workdir="* ]] || args+=("--workdir=runs/primus_hapt")
# glibc returns freed large buffers to the OS and faults them back in every step; keeping
# them is worth 5-20% on CPU (docs/benchmarks.md).
export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-1000000000}" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
exec "$venv/bin/python" -m primus_jax.main "${args[@]}"
