#!/usr/bin/env bash
# The few-shot demo on UCI HAPT (held-out test subjects): pretrain PRIMUS, SimCLR, IMU2CLIP and
# MultitaskSSL on the 18 training subjects, probe each frozen encoder, add the random-init
# probe and Standard Training, and merge everything into one table and plot.
#
#   bash launch/hapt_demo.sh [outdir]          # default runs/hapt_demo
#
# Re-running skips finished pretraining runs (each resumes from its workdir) and redoes the
# evaluations. Every run uses the same seed, data and k-shot draws (paired comparison).
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/launch/bootstrap.sh"
py="${PRIMUS_VENV:-$repo/.venv}/bin/python"
out="${1:-runs/hapt_demo}"
shots="${PRIMUS_DEMO_SHOTS:-1,2,5,10,20,50,100,500}"
st_shots="${PRIMUS_DEMO_ST_SHOTS:-1,5,10,50}"
cd "$repo"
export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-1000000000}" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
start=$(date +%s)

pretrain() {  # name, config
  echo "[demo] pretraining $1 ($2)" >&2
  "$py" -m primus_jax.main --config="$2" --workdir="$out/pretrain_$1"
}
evaluate() {  # name, checkpoint, methods, [extra flags]
  echo "[demo] evaluating $1" >&2
  "$py" -m primus_jax.main --config=configs/fewshot.py --config.checkpoint="$2" \
    --config.methods="$3" --config.shots="$shots" --config.run_name="$1" \
    --workdir="$out/eval_$1" "${@:4}"
}

pretrain primus configs/primus_hapt.py
pretrain simclr configs/hapt_baselines.py:simclr
pretrain imu2clip configs/hapt_baselines.py:imu2clip
pretrain multitask_ssl configs/hapt_baselines.py:multitask_ssl
for m in primus simclr imu2clip multitask_ssl; do
  evaluate "$m" "$out/pretrain_$m" logreg,ridge
done
evaluate random "" logreg,ridge,standard_training --config.standard_training_shots="$st_shots"

"$py" -m primus_jax.tools.merge_reports --output "$out" \
  "PRIMUS=$out/eval_primus/fewshot.json:logreg" \
  "SimCLR=$out/eval_simclr/fewshot.json:logreg" \
  "IMU2CLIP=$out/eval_imu2clip/fewshot.json:logreg" \
  "MultitaskSSL=$out/eval_multitask_ssl/fewshot.json:logreg" \
  "Random init=$out/eval_random/fewshot.json:logreg" \
  "Standard Training=$out/eval_random/fewshot.json:standard_training"
echo "[demo] done in $(( $(date +%s) - start )) s: $out/fewshot.md, $out/fewshot.json, $out/fewshot_*.png" >&2
