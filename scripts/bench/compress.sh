#!/usr/bin/env bash
# Knowledge distillation and int8 inference measured in one run (docs/compression.md): trains
# what is not trained yet, then measures every model with scripts/bench/compress.py.
#
#   teacher             configs/distill_teacher.yaml: the quickstart model (1.3M parameters)
#                       and recipe, 2 epochs                          -> runs/distill_teacher
#   student             configs/distill_student.yaml without its teacher: the same model,
#                       1 epoch                                        -> runs/compress_student
#   student distilled   configs/distill_student.yaml: that run with train.distill
#                                                                      -> runs/distill_student
#   wide                configs/distill_wide.yaml: the model ~4x wider (5.1M), measured when
#                       runs/distill_wide/best exists (WIDE=1 trains it: ~40 min)
#   ... int8            `xmodal quantize` of each                      -> runs/*_int8
#
# A run that exists is continued (`train --resume`), a finished one only measured again. On 2
# cores the training takes ~25 min, the measuring ~10 min.
#   scripts/bench/compress.sh
#   ROUNDS=3 SECONDS_PER_POINT=10 WIDE=1 scripts/bench/compress.sh
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build}"
XMODAL="$BUILD/xmodal"
cd "$ROOT"
[[ -x "$XMODAL" && -x "$BUILD/xmodal_bench_model" ]] || {
  echo "compress.sh: build first (scripts/setup.sh builds $XMODAL and the benchmarks)" >&2
  exit 2
}

if [[ ! -f data/fashion-scenes/v2_mscoco_test_annotations.json ]]; then
  "$XMODAL" data scenes --out data/fashion-scenes
fi

# train CONFIG RUN_DIR [--set K=V ...]: a fresh run, or the rest of one (a finished run returns
# at once)
train() {
  local config="$1" dir="$2"
  shift 2
  if [[ -d "$dir/checkpoints" ]]; then
    "$XMODAL" train --resume "$dir"
  else
    "$XMODAL" train "$config" --run-dir "$dir" "$@"
  fi
}
[[ -e runs/pretrain_fashion/best ]] || train configs/pretrain_fashion.yaml runs/pretrain_fashion
train configs/distill_teacher.yaml runs/distill_teacher
train configs/distill_student.yaml runs/compress_student --set train.distill.teacher=
train configs/distill_student.yaml runs/distill_student
if [[ "${WIDE:-0}" == 1 ]]; then
  [[ -e runs/distill_wide_pretrain/best ]] ||
    train configs/distill_wide_pretrain.yaml runs/distill_wide_pretrain
  train configs/distill_wide.yaml runs/distill_wide
fi

quantize() {  # CHECKPOINT OUT
  rm -rf "$2"
  "$XMODAL" quantize --checkpoint "$1" --out "$2"
}
for run in distill_teacher compress_student distill_student distill_wide; do
  [[ -e "runs/$run/best" ]] || continue
  quantize "runs/$run/best" "runs/${run}_int8"
done
models=("teacher=runs/distill_teacher/best" "teacher int8=runs/distill_teacher_int8"
  "student=runs/compress_student/best" "student int8=runs/compress_student_int8"
  "student distilled=runs/distill_student/best"
  "student distilled int8=runs/distill_student_int8")
if [[ -e runs/distill_w03_t1/best ]]; then
  # the answer-score term alone (weight 0.3, T 1, no feature term), when that run exists:
  #   xmodal train configs/distill_student.yaml --run-dir runs/distill_w03_t1 \
  #     --set train.distill.features=0
  models+=("student distilled, scores only=runs/distill_w03_t1/best")
fi
if [[ -e runs/distill_wide/best ]]; then
  models+=("wide=runs/distill_wide/best" "wide int8=runs/distill_wide_int8")
fi

# The figures are taken with OpenMP's default wait policy (a caller may have set
# OMP_WAIT_POLICY=PASSIVE to train beside other jobs).
unset OMP_WAIT_POLICY
"$XMODAL" info | sed -n '2p;5,6p'
/usr/bin/python3 "$ROOT/scripts/bench/compress.py" --xmodal "$XMODAL" \
  --bench "$BUILD/xmodal_bench_model" --rounds "${ROUNDS:-2}" --seconds "${SECONDS_PER_POINT:-8}" \
  --image data/fashion-scenes/images/test/test_02000001.png "${models[@]}"
