#!/usr/bin/env bash
# Quickstart variants side by side (docs/learning.md): each variant pretrains its image encoder
# (configs/pretrain_fashion.yaml with the variant's pretraining overrides), trains the quickstart
# VQA model from it (configs/quickstart.yaml with the variant's overrides), evaluates it on the
# test split and measures perception with `xmodal ceiling`: the encoder's ceiling and its
# labels' perception, and the trained model's own perception (its answers to "is there a X?" and
# "how many X are there?" for every category of every test scene). One row per variant.
#
#   scripts/variants.sh [NAME ...]                 # default: base sincos
#   OUT=runs/variants SEED=7 scripts/variants.sh base
#
# A variant already trained in OUT is evaluated again, not retrained. Variants:
#   base     the quickstart as committed
#   sincos   fixed 2D sine-cosine positions in the encoder, pretraining and VQA alike (a
#            patch's place on the scene grid, instead of the 2x2 table interpolated to 6x6)
#   lowlr    the image encoder trained at 0.3x the learning rate in VQA (train.vision_lr_mult),
#            so that the questions' gradients disturb its perception less
#   locate   the auxiliary locating loss in VQA (train.aux.locate: the categories of the leftmost
#            and rightmost article on the image [CLS] token)
#   scenes48 the encoder pretrained on 48 px scene-like canvases of 1-2 articles from all 60k
#            training articles, with dense targets (configs/pretrain_scenes.yaml), sincos positions
#   more     the VQA model trained on 40,000 training scenes instead of 10,000 (the same steps;
#            the val and test scenes are the same bytes: each split has its own random stream)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XMODAL="${XMODAL:-$ROOT/build/xmodal}"
OUT="${OUT:-runs/variants}"
SEED="${SEED:-1234}"
cd "$ROOT"
[[ -x "$XMODAL" ]] || { echo "variants: build first (scripts/setup.sh)" >&2; exit 1; }
[[ -f data/fashion-scenes/v2_mscoco_test_annotations.json ]] ||
  "$XMODAL" data scenes --out data/fashion-scenes

# The overrides of each variant: pretraining, then VQA (space-separated KEY=VALUE).
pretrain_config() {
  case "$1" in
    scenes48) echo configs/pretrain_scenes.yaml ;;
    *) echo configs/pretrain_fashion.yaml ;;
  esac
}
pretrain_sets() {
  case "$1" in
    base | lowlr | locate | more | scenes48) ;;
    sincos) echo "model.vision.positions=sincos" ;;
    *) echo "variants: unknown variant '$1' (see the list at the top of $0)" >&2; exit 2 ;;
  esac
}
vqa_sets() {
  case "$1" in
    base) ;;
    sincos | scenes48) echo "model.vision.positions=sincos" ;;
    lowlr) echo "train.vision_lr_mult=0.3" ;;
    locate) echo "train.aux.locate=1" ;;
    more) echo "data.root=data/fashion-scenes-40k train.max_steps=1876" ;;
  esac
}

# The data sets a variant reads, built once.
build_data() {
  case "$1" in
    scenes48)
      [[ -f data/pretrain-scenes/dataset_scenes.json ]] ||  # as scripts/pretrain_encoder.sh
        "$XMODAL" --log-level warn data scenes --out data/pretrain-scenes --canvas 48 \
          --max-items 2 --train 40000 --val 1000 --test 1 --overwrite >/dev/null ;;
    more)
      [[ -f data/fashion-scenes-40k/dataset_scenes.json ]] ||
        "$XMODAL" --log-level warn data scenes --out data/fashion-scenes-40k --train 40000 \
          --overwrite >/dev/null ;;
  esac
}

as_flags() {  # KEY=VALUE ... -> --set KEY=VALUE ...
  for kv in "$@"; do printf -- '--set\n%s\n' "$kv"; done
}

percent() {  # percent FILE KEY -> the number under KEY in a JSON file, as a percentage
  python3 -c 'import json, sys
v = json.load(open(sys.argv[1]))["metrics"].get(sys.argv[2])
print("-" if v is None else "%.2f" % (100 * v))' "$1" "$2"
}

row_of() {  # row_of TEXT LABEL -> the cells after LABEL in a markdown row of TEXT
  grep -F "| $2 |" <<<"$1" | head -1 | sed "s/^| $2 | //; s/ |$//; s/%//g"
}

variants=("$@")
[[ ${#variants[@]} -gt 0 ]] || variants=(base sincos)
table=()
for name in "${variants[@]}"; do
  pretrain_sets "$name" >/dev/null  # an unknown name stops here
  dir="$OUT/$name"
  build_data "$name"
  mapfile -t pre < <(as_flags $(pretrain_sets "$name"))
  mapfile -t vqa < <(as_flags $(vqa_sets "$name"))
  if [[ ! -e "$dir/pretrain/best" ]]; then
    echo "== $name: pretraining the image encoder" >&2
    rm -rf "$dir/pretrain"
    "$XMODAL" --log-level warn train "$(pretrain_config "$name")" --run-dir "$dir/pretrain" \
      --set run.seed="$SEED" "${pre[@]}" >/dev/null
  fi
  if [[ ! -e "$dir/vqa/best" ]]; then
    echo "== $name: training the quickstart model" >&2
    start=$SECONDS
    "$XMODAL" --log-level warn train configs/quickstart.yaml --run-dir "$dir/vqa" \
      --set run.seed="$SEED" --set model.vision.init_from="$dir/pretrain" "${vqa[@]}" >/dev/null
    echo "$((SECONDS - start))" >"$dir/vqa/train_seconds"
  fi
  "$XMODAL" --log-level warn eval --checkpoint "$dir/vqa/best" --split test \
    --out "$dir/eval-test" >/dev/null
  # An encoder pretrained on canvases has no classifier to cut articles out with: the base
  # variant's classifier stands in for the ceiling and the encoder's perception (marked "base").
  classifier="$dir/pretrain" mark=""
  if [[ "$(pretrain_config "$name")" != configs/pretrain_fashion.yaml ]]; then
    classifier="$OUT/base/pretrain" mark=" (base)"
    [[ -e "$classifier/best" ]] || "$XMODAL" --log-level warn train configs/pretrain_fashion.yaml \
      --run-dir "$classifier" --set run.seed="$SEED" >/dev/null
  fi
  ceiling="$("$XMODAL" --log-level warn ceiling --classifier "$classifier" \
    --model "$dir/vqa/best" --split test)"
  echo "$ceiling" >"$dir/ceiling-test.md"
  m="$dir/eval-test/metrics.json"
  cls="$(row_of "$ceiling" "classifier (its labels at the true boxes)")"
  own="$(row_of "$ceiling" "model (its own answers)")"
  table+=("| $name | $(percent "$m" accuracy) | $(percent "$m" accuracy_yes_no) | \
$(percent "$m" accuracy_number) | $(percent "$m" accuracy_other) | \
$(row_of "$ceiling" overall | cut -d'|' -f1 | xargs)$mark | $(cut -d'|' -f1 <<<"$cls" | xargs) / \
$(cut -d'|' -f1 <<<"$own" | xargs) | $(cut -d'|' -f4 <<<"$cls" | xargs) / \
$(cut -d'|' -f4 <<<"$own" | xargs) | $(cat "$dir/vqa/train_seconds" 2>/dev/null || echo -) |")
done

echo "$("$XMODAL" info | grep '^CPU')"
echo "| variant | test % | yes/no | number | other | encoder ceiling | presence: encoder / model | count: encoder / model | train s |"
echo "|---|---|---|---|---|---|---|---|---|"
printf '%s\n' "${table[@]}"
