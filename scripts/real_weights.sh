#!/usr/bin/env bash
# What real pretrained weights buy on the scenes (docs/real_weights.md): the real BERT
# all-MiniLM-L6-v2 (scripts/models.lock) against the quickstarts' own small text encoders, every
# run in this one invocation, on this machine:
#   retrieval  configs/quickstart_retrieval.yaml (2-layer, 128-wide BERT trained from scratch)
#   lit        configs/lit_minilm.yaml (the real BERT, locked; image side + projections train)
#   vqa        configs/quickstart.yaml (word embeddings, no text layers)
#   vqa_frozen configs/quickstart_minilm_frozen.yaml (the real BERT, locked)
#   vqa_tuned  configs/quickstart_minilm.yaml (the real BERT, fine-tuned at 0.05x the lr)
# Retrieval runs are evaluated on the test split (R@K) and as zero-shot Fashion-MNIST
# classifiers (--zoom-out 3.43) with the config's caption-like prompts and with natural prompts
# that no training caption has; VQA runs on the test split. The table (markdown) is printed at
# the end and written to OUT/table.md, with `xmodal info`'s CPU line.
#   scripts/real_weights.sh                      # all five (~90 min on 2 cores)
#   scripts/real_weights.sh lit retrieval        # some
#   OUT=runs/rw2 scripts/real_weights.sh ...     # default OUT=runs/real_weights
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
X="${BUILD_DIR:-$ROOT/build}/xmodal"
OUT="${OUT:-runs/real_weights}"
STAGES=("$@")
((${#STAGES[@]})) || STAGES=(retrieval lit vqa vqa_frozen vqa_tuned)
NATURAL=(--prompt "a photo of a {}." --prompt "a product photo of a {}." --prompt "an image of a {}, an item of clothing.")

[[ -x "$X" ]] || { echo "real_weights: $X not built (scripts/setup.sh)" >&2; exit 1; }
scripts/fetch_model.sh all-minilm-l6-v2 >/dev/null
[[ -f data/fashion-scenes/dataset_scenes.json ]] || "$X" data scenes --out data/fashion-scenes --overwrite
XMODAL="$X" scripts/pretrain_encoder.sh runs/pretrain_fashion  # vqa and lit
XMODAL="$X" scripts/pretrain_encoder.sh runs/pretrain_scenes   # retrieval
mkdir -p "$OUT"
"$X" info 2>/dev/null | grep '^CPU:' >"$OUT/cpu.txt"

config_of() {
  case "$1" in
    retrieval) echo configs/quickstart_retrieval.yaml ;;
    lit) echo configs/lit_minilm.yaml ;;
    vqa) echo configs/quickstart.yaml ;;
    vqa_frozen) echo configs/quickstart_minilm_frozen.yaml ;;
    vqa_tuned) echo configs/quickstart_minilm.yaml ;;
    *) echo "real_weights: unknown stage $1" >&2; exit 1 ;;
  esac
}

for stage in "${STAGES[@]}"; do
  config="$(config_of "$stage")"
  dir="$OUT/$stage"
  echo "== $stage: $config -> $dir"
  if [[ ! -f "$dir/done" ]]; then
    rm -rf "$dir"
    "$X" train "$config" --set "run.dir=$dir" >"$OUT/$stage.train.log" 2>&1 ||
      { tail -5 "$OUT/$stage.train.log"; exit 1; }
    touch "$dir/done"
  fi
  "$X" eval --checkpoint "$dir/best" --split test --out "$dir/eval-test" >/dev/null
  if [[ "$stage" == retrieval || "$stage" == lit ]]; then
    "$X" eval --checkpoint "$dir/best" --zero-shot fashion_mnist --zoom-out 3.43 \
      --out "$dir/zero-shot-config" >/dev/null
    "$X" eval --checkpoint "$dir/best" --zero-shot fashion_mnist --zoom-out 3.43 \
      "${NATURAL[@]}" --out "$dir/zero-shot-natural" >/dev/null
  fi
done

python3 - "$OUT" "${STAGES[@]}" <<'PY' | tee "$OUT/table.md"
import json, os, sys
out, stages = sys.argv[1], sys.argv[2:]
def load(path):
    with open(path) as f:
        return json.load(f)
def end_event(run):
    with open(os.path.join(run, "metrics.jsonl")) as f:
        ends = [json.loads(l) for l in f if '"event":"end"' in l]
    return ends[-1]
print(open(os.path.join(out, "cpu.txt")).read().strip())
print()
rows_r, rows_v = [], []
for s in stages:
    run = os.path.join(out, s)
    e = end_event(run)
    per_step = 1000 * e["train_s"] / max(e["step"], 1)
    m = load(os.path.join(run, "eval-test", "metrics.json"))["metrics"]
    time = f'{int(e["train_s"]) // 60}:{int(e["train_s"]) % 60:02d}'
    if s in ("retrieval", "lit"):
        zc = load(os.path.join(run, "zero-shot-config", "metrics.json"))["metrics"]
        zn = load(os.path.join(run, "zero-shot-natural", "metrics.json"))["metrics"]
        r = lambda k: f'{m[k]:.2f}'  # recalls and zero-shot accuracies are percentages
        rows_r.append(f'| {s} | {e["step"]} | {per_step:.0f} ms | {time} | {r("i2t_r1")} / {r("i2t_r5")} / {r("i2t_r10")} '
                      f'| {r("t2i_r1")} / {r("t2i_r5")} / {r("t2i_r10")} | {m["rsum"]:.2f} '
                      f'| {zc["top1"]:.2f} / {zc["top5"]:.2f} | {zn["top1"]:.2f} / {zn["top5"]:.2f} |')
    else:
        p = lambda k: f'{100 * m[k]:.2f}'  # VQA accuracies are fractions
        rows_v.append(f'| {s} | {e["step"]} | {per_step:.0f} ms | {time} | {p("accuracy")} | {p("accuracy_yes_no")} '
                      f'| {p("accuracy_number")} | {p("accuracy_other")} |')
if rows_r:
    print("| retrieval run | steps | time per step | train time | i2t R@1 / R@5 / R@10 | t2i R@1 / R@5 / R@10 | rsum | zero-shot top-1 / top-5, config prompts | zero-shot top-1 / top-5, natural prompts |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(rows_r))
    print()
if rows_v:
    print("| VQA run | steps | time per step | train time | test accuracy | yes/no | number | other |")
    print("|---|---|---|---|---|---|---|---|")
    print("\n".join(rows_v))
PY
