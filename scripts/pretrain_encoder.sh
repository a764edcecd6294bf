#!/usr/bin/env bash
# The pretrained image encoders that the scenes configs start from (model.vision.init_from),
# trained when they are missing; an unfinished run is started again (they are short).
#
#   scripts/pretrain_encoder.sh runs/pretrain_fashion  # configs/pretrain_fashion.yaml: classifies
#                                                      # Fashion-MNIST at 32 px (~40 s)
#   scripts/pretrain_encoder.sh runs/pretrain_scenes   # configs/pretrain_scenes.yaml: 48 px
#                                                      # scene-like canvases (~35 s to build, ~50 s)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XMODAL="${XMODAL:-$ROOT/build/xmodal}"
cd "$ROOT"
dir="${1:?usage: scripts/pretrain_encoder.sh runs/pretrain_fashion | runs/pretrain_scenes}"
[[ -x "$XMODAL" ]] || { echo "pretrain_encoder: $XMODAL not built (scripts/setup.sh)" >&2; exit 1; }

case "$dir" in
  runs/pretrain_fashion) config=configs/pretrain_fashion.yaml ;;
  runs/pretrain_scenes)
    config=configs/pretrain_scenes.yaml
    if [[ ! -f data/pretrain-scenes/dataset_scenes.json ]]; then
      echo "== building the pretraining canvases (data/pretrain-scenes)"
      "$XMODAL" data scenes --out data/pretrain-scenes --canvas 48 --max-items 2 --train 40000 \
        --val 1000 --test 1 --overwrite
    fi ;;
  *) echo "pretrain_encoder: no recipe for '$dir' (runs/pretrain_fashion or runs/pretrain_scenes)" >&2
     exit 2 ;;
esac
[[ -e "$dir/best" ]] && exit 0
echo "== pretraining the image encoder into $dir ($config)"
rm -rf "$dir"
"$XMODAL" train "$config" --run-dir "$dir"
