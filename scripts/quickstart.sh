#!/usr/bin/env bash
# The main job end to end on a fresh Debian 12 machine: install, build, build the offline data
# set, train the quickstart model (configs/quickstart.yaml), evaluate it on the test split and
# answer one question. Re-running continues the run where it stopped (or only evaluates it
# again when it has finished).
#
#   scripts/quickstart.sh
#   RUN_DIR=runs/other CONFIG=configs/quickstart_counting.yaml scripts/quickstart.sh
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
XMODAL="$BUILD_DIR/xmodal"
CONFIG="${CONFIG:-configs/quickstart.yaml}"
RUN_DIR="${RUN_DIR:-runs/quickstart}"
start=$SECONDS

# Only the binary: the tests and benchmarks are built by scripts/test.sh.
BUILD_TARGET="${BUILD_TARGET:-xmodal_app}" "$ROOT/scripts/setup.sh"
cd "$ROOT"

echo "== xmodal info"
"$XMODAL" info

echo "== model of $CONFIG"
"$XMODAL" info --config "$CONFIG" | tail -n +6

if [[ ! -f data/fashion-scenes/v2_mscoco_test_annotations.json ]]; then
  echo "== building the Fashion-scenes data set (data/fashion-scenes)"
  "$XMODAL" data scenes --out data/fashion-scenes
elif ! grep -q '"captions": "partial"' data/fashion-scenes/scenes.json 2>/dev/null ||
  [[ ! -f data/fashion-scenes/dataset_scenes.json ]]; then
  # A set made before partial captions (captions that state the counts, so counting could be
  # read from the text alone) or before the retrieval captions: the same images and questions;
  # only the captions change.
  echo "== rebuilding data/fashion-scenes with the current captions (images and questions stay the same)"
  "$XMODAL" data scenes --out data/fashion-scenes --overwrite
else
  echo "== data/fashion-scenes already built"
fi

# The quickstart VQA model starts its image encoder from a Fashion-MNIST classifier
# (configs/pretrain_fashion.yaml, ~40 s), the retrieval one from an encoder pretrained on scene-like
# canvases (configs/pretrain_scenes.yaml); scripts/pretrain_encoder.sh trains the one that CONFIG's
# model.vision.init_from names when it has not finished yet.
PRETRAIN_DIR=runs/pretrain_fashion
resolved="$("$XMODAL" train "$CONFIG" --dump-config)"
for encoder in runs/pretrain_fashion runs/pretrain_scenes; do
  if grep -q "^ *init_from: \"$encoder\"" <<<"$resolved"; then
    XMODAL="$XMODAL" "$ROOT/scripts/pretrain_encoder.sh" "$encoder"
  fi
done

if [[ -d "$RUN_DIR/checkpoints" ]]; then
  echo "== continuing the run in $RUN_DIR"
  "$XMODAL" train --resume "$RUN_DIR"
else
  echo "== training $CONFIG into $RUN_DIR"
  "$XMODAL" train "$CONFIG" --run-dir "$RUN_DIR"
fi
"$XMODAL" plot "$RUN_DIR"

echo "== evaluating the best checkpoint on the test split"
"$XMODAL" eval --checkpoint "$RUN_DIR/best" --split test --out "$RUN_DIR/eval-test"

# What the result is measured against: the text-only prior (the most frequent training answer of
# each question) and the ceiling that the starting encoder's recognition of single articles sets
# (its labels for every article at the true boxes, with exact reasoning: xmodal ceiling).
if grep -q "^ *init_from: \"$PRETRAIN_DIR\"" <<<"$resolved" && grep -q "^task: vqa" <<<"$resolved"; then
  echo "== the ceiling of $PRETRAIN_DIR and the text-only prior, on the test split"
  "$XMODAL" ceiling --classifier "$PRETRAIN_DIR" --split test | sed -n '1,9p'
fi

echo "== one prediction"
"$XMODAL" predict --checkpoint "$RUN_DIR/best" \
  --image data/fashion-scenes/images/test/test_02000001.png \
  --text "how many t-shirts are there?"

echo "== quickstart finished in $((SECONDS - start)) s; curves: $RUN_DIR/curves.png"
