#!/usr/bin/env bash
# Fusion ablation: trains the quickstart model with fusion concat, late, text_only and
# image_only on the same budget (optimizer steps), evaluates each on the test split and prints
# one table: VQA accuracy per answer type, or for a counting config the count accuracy per
# (image, category), the exact match of the whole count vector and the MAE.
#
#   scripts/ablation.sh [STEPS]          # default 300 optimizer steps each; 0 = the config's epochs
#   CONFIG=configs/quickstart.yaml OUT=runs/ablation MODES="text_only image_only" scripts/ablation.sh 900
#   CONFIG=configs/quickstart_counting.yaml OUT=runs/ablation_counting scripts/ablation.sh 0
#
# `late` pools each encoder's [CLS] token, so it needs encoder layers: the quickstart's joint
# layers are replaced by 2 text encoder layers for it. text_only has no image, so no auxiliary
# losses either.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XMODAL="${XMODAL:-$ROOT/build/xmodal}"
CONFIG="${CONFIG:-configs/quickstart.yaml}"
OUT="${OUT:-runs/ablation}"
STEPS="${1:-300}"
MODES="${MODES:-concat late text_only image_only}"
cd "$ROOT"
[[ -x "$XMODAL" ]] || { echo "ablation: build first (scripts/setup.sh)" >&2; exit 1; }
[[ -f data/fashion-scenes/v2_mscoco_test_annotations.json ]] ||
  "$XMODAL" data scenes --out data/fashion-scenes

value() {  # value FILE KEY -> the first number stored under KEY in the JSON file, or nothing
  sed -n "s/^ *\"$2\": \([0-9.eE+-]*\),\{0,1\}$/\1/p" "$1" | head -1
}
metric() {  # metric FILE KEY -> percent with 1 decimal, or "-"
  local v
  v="$(value "$1" "$2")"
  [[ -n "$v" ]] && awk -v x="$v" 'BEGIN { printf "%.1f", 100 * x }' || echo "-"
}

task="$("$XMODAL" train "$CONFIG" --dump-config | sed -n 's/^task: *\([a-z_]*\).*/\1/p')"
budget=(--set train.max_steps="$STEPS")
[[ $STEPS != 0 ]] && budget+=(--set train.eval_every="$STEPS" --set train.checkpoint_every="$STEPS")

rows=()
for mode in $MODES; do
  extra=()
  [[ $mode == late ]] && extra=(--set model.text.layers=2 --set model.fusion.layers=0)
  [[ $mode == text_only ]] && extra=(--set train.aux.counting=0 --set train.aux.dense=0)
  rm -rf "${OUT:?}/$mode"
  echo "== $mode: $STEPS steps"
  start=$SECONDS
  "$XMODAL" --log-level warn train "$CONFIG" --run-dir "$OUT/$mode" \
    --set model.fusion.mode="$mode" "${budget[@]}" "${extra[@]}"
  secs=$((SECONDS - start))
  "$XMODAL" --log-level warn eval --checkpoint "$OUT/$mode/best" --split test \
    --out "$OUT/$mode/eval-test" >/dev/null
  m="$OUT/$mode/eval-test/metrics.json"
  if [[ $task == counting ]]; then
    mae="$(value "$m" mae)"
    rows+=("| $mode | $(metric "$m" accuracy) | $(metric "$m" exact_match) | $(printf '%.3f' "$mae") | $(metric "$m" f1_macro) | $secs |")
  else
    rows+=("| $mode | $(metric "$m" accuracy) | $(metric "$m" accuracy_number) | $(metric "$m" accuracy_yes_no) | $(metric "$m" accuracy_other) | $secs |")
  fi
done

steps_text="$STEPS optimizer steps"
[[ $STEPS == 0 ]] && steps_text="the config's epochs"
echo
if [[ $task == counting ]]; then
  echo "Test counting after $steps_text ($CONFIG):"
  echo
  echo "| fusion | count accuracy % (image, category) | exact match % | MAE | presence F1 macro % | train s |"
else
  echo "Test VQA accuracy (%) after $steps_text ($CONFIG):"
  echo
  echo "| fusion | overall | number | yes/no | other | train s |"
fi
echo "|---|---|---|---|---|---|"
printf '%s\n' "${rows[@]}"
