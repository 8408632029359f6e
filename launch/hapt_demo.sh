#!/usr/bin/env bash
# The few-shot demo on UCI HAPT (held-out test subjects): pretrain PRIMUS, SimCLR, IMU2CLIP,
# MultitaskSSL, the loss ablations, the multimodal-fraction variants and PRIMUS with text-lookup
# neighbours on the 18 training subjects, probe each frozen encoder, add the random-init
# probe and Standard Training, and merge them into tables and plots. Then the same
# encoders on the novel classes: HAPT's six postural transitions (uci_hapt/transitions), which
# no pretraining text mentions, with zero-shot from hand-written prompts; second table.
#
#   bash launch/hapt_demo.sh [outdir]          # default runs/hapt_demo
#
# Outputs: <outdir>/fewshot.{md,json} (+ plot), the six activities of the held-out subjects;
# <outdir>/ablations/ and <outdir>/multimodal_fraction/ (paper Fig. 6 and Fig. 3 on HAPT);
# <outdir>/novel_classes/fewshot.{md,json} (+ plot), the transitions of the same subjects.
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
# Transitions: 34-37 training windows per class (one per transition event), so k <= 20.
novel_shots="${PRIMUS_DEMO_NOVEL_SHOTS:-1,2,5,10,20}"
cd "$repo"
export MALLOC_TOP_PAD_="${MALLOC_TOP_PAD_:-1000000000}" MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"
start=$(date +%s)

# Loss ablations (paper Fig. 6), multimodal fractions (Fig. 3) and the earlier text-lookup NN.
variants=(ss_mm mm_nn ss_nn mmfrac_0.1 mmfrac_0.5 nn_text_lookup)

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
evaluate_novel() {  # name, checkpoint, methods (zero-shot is added when the encoder allows)
  echo "[demo] evaluating $1 on the novel classes (uci_hapt/transitions)" >&2
  "$py" -m primus_jax.main --config=configs/fewshot.py:transitions --config.checkpoint="$2" \
    --config.methods="$3" --config.shots="$novel_shots" --config.run_name="$1" \
    --workdir="$out/novel_$1"
}

pretrain primus configs/primus_hapt.py
for v in simclr imu2clip multitask_ssl "${variants[@]}"; do
  pretrain "$v" "configs/hapt_baselines.py:$v"
done
for m in primus simclr imu2clip multitask_ssl "${variants[@]}"; do
  evaluate "$m" "$out/pretrain_$m" logreg,ridge
done
# The README's Standard Training row is the reference's 20-epoch budget; the fair budget
# (standard_training) and finetune are in docs/results.md ("Fine-tuning and a fair ...").
evaluate random "" logreg,ridge,standard_training_reference --config.standard_training_shots="$st_shots"

"$py" -m primus_jax.tools.merge_reports --output "$out" \
  "PRIMUS=$out/eval_primus/fewshot.json:logreg" \
  "SimCLR=$out/eval_simclr/fewshot.json:logreg" \
  "IMU2CLIP=$out/eval_imu2clip/fewshot.json:logreg" \
  "MultitaskSSL=$out/eval_multitask_ssl/fewshot.json:logreg" \
  "Random init=$out/eval_random/fewshot.json:logreg" \
  "Standard Training=$out/eval_random/fewshot.json:standard_training_reference"

"$py" -m primus_jax.tools.merge_reports --output "$out/ablations" \
  "PRIMUS (SS+MM+NN)=$out/eval_primus/fewshot.json:logreg" \
  "SS+MM=$out/eval_ss_mm/fewshot.json:logreg" \
  "MM+NN=$out/eval_mm_nn/fewshot.json:logreg" \
  "SS+NN=$out/eval_ss_nn/fewshot.json:logreg" \
  "MM (IMU2CLIP)=$out/eval_imu2clip/fewshot.json:logreg" \
  "SS (SimCLR)=$out/eval_simclr/fewshot.json:logreg" \
  "PRIMUS, NN by text=$out/eval_nn_text_lookup/fewshot.json:logreg"
"$py" -m primus_jax.tools.merge_reports --output "$out/multimodal_fraction" \
  "PRIMUS 100% text=$out/eval_primus/fewshot.json:logreg" \
  "PRIMUS 50% text=$out/eval_mmfrac_0.5/fewshot.json:logreg" \
  "PRIMUS 10% text=$out/eval_mmfrac_0.1/fewshot.json:logreg" \
  "IMU2CLIP 100% text=$out/eval_imu2clip/fewshot.json:logreg" \
  "SimCLR (no text)=$out/eval_simclr/fewshot.json:logreg"

evaluate_novel primus "$out/pretrain_primus" logreg,logreg_zs
evaluate_novel nn_text_lookup "$out/pretrain_nn_text_lookup" logreg
evaluate_novel imu2clip "$out/pretrain_imu2clip" logreg,logreg_zs
evaluate_novel simclr "$out/pretrain_simclr" logreg
evaluate_novel multitask_ssl "$out/pretrain_multitask_ssl" logreg
evaluate_novel random "" logreg
"$py" -m primus_jax.tools.merge_reports --output "$out/novel_classes" \
  "PRIMUS=$out/novel_primus/fewshot.json:logreg" \
  "PRIMUS (zero-shot start)=$out/novel_primus/fewshot.json:logreg_zs" \
  "PRIMUS zero-shot=$out/novel_primus/fewshot.json:zeroshot" \
  "PRIMUS, NN by text=$out/novel_nn_text_lookup/fewshot.json:logreg" \
  "SimCLR=$out/novel_simclr/fewshot.json:logreg" \
  "IMU2CLIP=$out/novel_imu2clip/fewshot.json:logreg" \
  "IMU2CLIP (zero-shot start)=$out/novel_imu2clip/fewshot.json:logreg_zs" \
  "IMU2CLIP zero-shot=$out/novel_imu2clip/fewshot.json:zeroshot" \
  "MultitaskSSL=$out/novel_multitask_ssl/fewshot.json:logreg" \
  "Random init=$out/novel_random/fewshot.json:logreg"
echo "[demo] done in $(( $(date +%s) - start )) s: $out/fewshot.md, $out/fewshot.json, $out/fewshot_*.png;" \
  "novel classes: $out/novel_classes/fewshot.md" >&2
