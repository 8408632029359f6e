#!/usr/bin/env bash
# Checks a GPU/TPU host end to end in a few minutes and writes OUT_DIR/report.{json,md}:
# device, train-step benchmarks (batch 1024 and 4096, fp32 and bf16), forward, resident input,
# the PyTorch step on the same GPU (PRIMUS_TORCH_REFERENCE=path/to/torch_reference_step.py),
# 20 training steps compared with the host CPU, StableHLO export, the largest batch that fits.
#
#   bash launch/accelerator_check.sh runs/accelerator_check [--batches=1024,4096 ...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
out="${1:?usage: bash launch/accelerator_check.sh OUT_DIR [flags of primus_jax.tools.accelerator_check]}"
shift
python="${PRIMUS_PYTHON:-python}"
[[ -x "$repo/.venv/bin/python" && -z "${PRIMUS_PYTHON:-}" ]] && python="$repo/.venv/bin/python"
cd "$repo"
export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-1000000000}" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
exec "$python" -m primus_jax.tools.accelerator_check --out_dir="$out" "$@"
