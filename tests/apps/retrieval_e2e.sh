#!/usr/bin/env bash
# Task retrieval end to end on the real binary (~1 min): a small scenes set, a tiny dual encoder
# trained for a few steps, then
#   eval          metrics.json has the recall keys, the table prints
#   embed         R@K recomputed here from `xmodal embed`'s image_embeds / text_embeds of the
#                 same images and captions equals what eval reported (the same tie rule)
#   --zero-shot   top-1 / top-5 on Fashion-MNIST's test images
#   index/search  a split indexed; a text query answers JSON lines; an image query finds itself
#   tests/apps/retrieval_e2e.sh BUILD_DIR
set -euo pipefail
BUILD="$(cd "${1:-build}" && pwd)"
XMODAL="$BUILD/xmodal"
WORK="$(mktemp -d)"
trap 'rm -rf "$WORK"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

"$XMODAL" --log-level warn data scenes --out "$WORK/scenes" --train 120 --val 24 --test 24 >/dev/null
cat >"$WORK/tiny.yaml" <<YAML
task: retrieval
run: {dir: $WORK/run, threads: 2, seed: 3}
data: {root: $WORK/scenes, image_size: 32, max_text_len: 48, workers: 1}
model:
  vision: {patch_size: 16, hidden: 32, layers: 1, heads: 2, mlp_dim: 64}
  text: {hidden: 32, layers: 1, heads: 2, intermediate: 64, max_position: 48}
  retrieval: {embed_dim: 16}
train: {batch_size: 32, max_steps: 20, lr: 0.002, eval_every: 10, checkpoint_every: 10,
        log_every: 10, early_stopping: {metric: rsum, mode: max}}
eval: {prompts: ["a picture showing a {} in the middle.", "a {} in the middle."]}
YAML
"$XMODAL" --log-level warn train "$WORK/tiny.yaml" >/dev/null
"$XMODAL" --log-level warn eval --checkpoint "$WORK/run/best" --split test --out "$WORK/eval" \
  >"$WORK/eval.txt"
grep -q "image -> text" "$WORK/eval.txt" || fail "eval table: $(cat "$WORK/eval.txt")"
grep -q "same content" "$WORK/eval.txt" || fail "no same-content table"

# The test split's images and captions, in the order eval reads them.
/usr/bin/python3 - "$WORK" <<'PY'
import json, sys
work = sys.argv[1]
d = json.load(open(f"{work}/scenes/dataset_scenes.json"))
with open(f"{work}/inputs.jsonl", "w") as f:
    for im in d["images"]:
        if im["split"] != "test":
            continue
        for s in im["sentences"]:
            f.write(json.dumps({"image": f"{work}/scenes/{im['filepath']}/{im['filename']}",
                                "text": s["raw"]}) + "\n")
PY
"$XMODAL" --log-level warn embed --checkpoint "$WORK/run/best" --input "$WORK/inputs.jsonl" \
  --out "$WORK/embeds.safetensors" >/dev/null
/usr/bin/python3 - "$WORK" <<'PY'
import json, struct, sys
work = sys.argv[1]
raw = open(f"{work}/embeds.safetensors", "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
header = json.loads(raw[8:8 + n])
def tensor(name):
    h = header[name]
    a, b = h["data_offsets"]
    rows, cols = h["shape"]
    vals = struct.unpack(f"<{rows * cols}f", raw[8 + n + a:8 + n + b])
    return [vals[r * cols:(r + 1) * cols] for r in range(rows)]
images, texts = tensor("image_embeds"), tensor("text_embeds")
paths = [json.loads(l)["image"] for l in open(f"{work}/inputs.jsonl")]
distinct = list(dict.fromkeys(paths))
img = [images[paths.index(p)] for p in distinct]
owner = [distinct.index(p) for p in paths]
dot = lambda u, v: sum(x * y for x, y in zip(u, v))
sim = [[dot(t, i) for i in img] for t in texts]
def rank(scores, truth):  # wrong candidates at or above the best true one
    best = max(s for s, t in zip(scores, truth) if t)
    return sum(1 for s, t in zip(scores, truth) if not t and s >= best)
t2i = [rank(sim[t], [owner[t] == j for j in range(len(img))]) for t in range(len(texts))]
i2t = [rank([sim[t][j] for t in range(len(texts))], [owner[t] == j for t in range(len(texts))])
       for j in range(len(img))]
mine = {}
for k in (1, 5, 10):
    mine[f"i2t_r{k}"] = 100 * sum(r < k for r in i2t) / len(i2t)
    mine[f"t2i_r{k}"] = 100 * sum(r < k for r in t2i) / len(t2i)
reported = json.load(open(f"{work}/eval/metrics.json"))["metrics"]
for key, value in mine.items():
    if abs(reported[key] - value) > 1e-6:
        sys.exit(f"FAIL: {key}: eval says {reported[key]}, the embeddings give {value}")
print(f"[retrieval] R@K from `xmodal embed` = eval's: " +
      ", ".join(f"{k} {v:.1f}" for k, v in sorted(mine.items())) +
      f"; rsum {reported['rsum']:.1f}, {len(texts)} captions of {len(img)} images")
PY

if [[ -d /usr/share/datasets/fashion-mnist ]]; then
  "$XMODAL" --log-level warn eval --checkpoint "$WORK/run/best" --zero-shot fashion_mnist \
    --zoom-out 3.43 --out "$WORK/zs" >"$WORK/zs.txt"
  grep -q "zero-shot fashion_mnist (10000 images, 10 classes): top-1" "$WORK/zs.txt" ||
    fail "zero-shot: $(head -3 "$WORK/zs.txt")"
  # --prompt replaces eval.prompts, each text whole (quotes, commas and brackets included)
  "$XMODAL" --log-level warn eval --checkpoint "$WORK/run/best" --zero-shot fashion_mnist \
    --prompt 'a "photo", of a {}' --prompt '[a {}]' --out "$WORK/zs2" >/dev/null
  python3 -c 'import json, sys; p = json.load(open(sys.argv[1]))["prompts"]
assert p == ["a \"photo\", of a {}", "[a {}]"], p' "$WORK/zs2/metrics.json" ||
    fail "zero-shot --prompt: the prompts in zs2/metrics.json"
fi

# ITM: a matching head trained on in-batch hard negatives; eval re-ranks each query's top 10
"$XMODAL" --log-level warn train "$WORK/tiny.yaml" --run-dir "$WORK/itm" --set train.itm=1 \
  --set model.fusion.hidden=32 --set model.fusion.layers=1 --set model.fusion.heads=2 \
  --set model.fusion.mlp_dim=64 --set train.max_steps=10 >/dev/null
"$XMODAL" --log-level warn eval --checkpoint "$WORK/itm/best" --split test --rerank-k 10 \
  --out "$WORK/eval_itm" >"$WORK/eval_itm.txt"
grep -q "Recall, ITM re-ranked top 10" "$WORK/eval_itm.txt" || fail "no re-ranked table: $(cat "$WORK/eval_itm.txt")"
grep -q '"itm_rsum"' "$WORK/eval_itm/metrics.json" || fail "no itm_rsum in metrics.json"

"$XMODAL" --log-level warn index --checkpoint "$WORK/run/best" --split test --out "$WORK/index" \
  >"$WORK/index.txt"
grep -q "indexed 24 image(s); $WORK/index holds 24" "$WORK/index.txt" || fail "$(cat "$WORK/index.txt")"
"$XMODAL" --log-level warn search --index "$WORK/index" --text "a bag in the middle." --top-k 3 \
  >"$WORK/search.txt"
[[ "$(wc -l <"$WORK/search.txt")" == 3 ]] || fail "search: $(cat "$WORK/search.txt")"
grep -q '^{"path":.*"rank":1,"score":' "$WORK/search.txt" || fail "search output: $(head -1 "$WORK/search.txt")"
first="$(/usr/bin/python3 -c 'import json,sys; print(json.loads(open(sys.argv[1]).readline())["path"])' "$WORK/search.txt")"
"$XMODAL" --log-level warn search --index "$WORK/index" --image "$first" --top-k 1 | grep -q "\"path\":\"$first\"" ||
  fail "an indexed image does not find itself"
echo "[retrieval] eval, embed, zero-shot, index and search: ok"
