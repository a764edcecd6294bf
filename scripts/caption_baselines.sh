#!/usr/bin/env bash
# The captioning quickstart against two baselines on the scenes' test split, in one run
# (issue 46's acceptance), each scored by `xmodal score --task caption` (BLEU-4, ROUGE-L,
# CIDEr-D as pycocoevalcap computes them):
#   model      `xmodal eval` of the caption checkpoint (beam search, eval.caption.*)
#   best-val   the one training caption that scores best in CIDEr-D on the val split, given to
#              every test image (candidates: the BEST_OF most frequent distinct training captions)
#   nearest    the first caption of the training image nearest to each test image under the
#              retrieval model (cosine of its image embeddings; `xmodal index --split`)
#
#   scripts/caption_baselines.sh [CAPTION_RUN] [RETRIEVAL_RUN]
#       defaults runs/quickstart_caption and runs/quickstart_retrieval (train them with
#       `xmodal train configs/quickstart_caption.yaml` and configs/quickstart_retrieval.yaml)
# Needs the bench venv's numpy for the nearest-neighbour search (scripts/bench/peer_venv.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
XMODAL="${XMODAL:-$ROOT/build/xmodal}"
CAPTION_RUN="${1:-runs/quickstart_caption}"
RETRIEVAL_RUN="${2:-runs/quickstart_retrieval}"
BEST_OF="${BEST_OF:-300}"
DATA=data/fashion-scenes
REFS="$DATA/dataset_scenes.json"
PY="$("$ROOT/scripts/bench/peer_venv.sh")"
WORK="$(mktemp -d /tmp/xmodal-caption-baselines-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$XMODAL" info | grep -E '^CPU' || true

# the model
"$XMODAL" eval --checkpoint "$CAPTION_RUN/best" --split test --out "$WORK/model" >/dev/null
cp "$WORK/model/results.json" "$WORK/model.json"

# best-val: candidates, each scored on val as the caption of every val image
"$PY" - "$REFS" "$WORK" "$BEST_OF" <<'PYEOF'
import collections, json, os, sys
refs, work, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
images = json.load(open(refs))["images"]
ident = lambda im: im.get("cocoid", im["imgid"])
count = collections.Counter(s["raw"] for im in images if im["split"] == "train" for s in im["sentences"])
val = [ident(im) for im in images if im["split"] == "val"]
test = [ident(im) for im in images if im["split"] == "test"]
os.makedirs(os.path.join(work, "cand"))
for k, (caption, _) in enumerate(count.most_common(n)):
    json.dump([{"image_id": i, "caption": caption} for i in val], open(os.path.join(work, "cand", "%04d.json" % k), "w"))
json.dump({"test": test, "candidates": [c for c, _ in count.most_common(n)]}, open(os.path.join(work, "cand.json"), "w"))
PYEOF
best=-1 best_k=0
for f in "$WORK"/cand/*.json; do
  "$XMODAL" score --task caption --results "$f" --annotations "$REFS" --out "$f.score" >/dev/null
  c=$(/usr/bin/python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["overall"]["CIDEr"])' "$f.score")
  if /usr/bin/python3 -c 'import sys; sys.exit(0 if float(sys.argv[1]) > float(sys.argv[2]) else 1)' "$c" "$best"; then
    best=$c best_k=$(basename "$f" .json)
  fi
done
"$PY" - "$WORK" "$best_k" <<'PYEOF'
import json, sys
work, k = sys.argv[1], int(sys.argv[2])
c = json.load(open(work + "/cand.json"))
caption = c["candidates"][k]
print("best-val caption (val CIDEr-D of %d candidates): %r" % (len(c["candidates"]), caption))
json.dump([{"image_id": i, "caption": caption} for i in c["test"]], open(work + "/bestval.json", "w"))
PYEOF

# nearest: the retrieval model's image embeddings of the train and test splits
"$XMODAL" index --checkpoint "$RETRIEVAL_RUN/best" --split train --out "$WORK/idx_train" >/dev/null
"$XMODAL" index --checkpoint "$RETRIEVAL_RUN/best" --split test --out "$WORK/idx_test" >/dev/null
"$PY" - "$REFS" "$WORK" <<'PYEOF'
import json, os, struct, sys
import numpy as np
refs, work = sys.argv[1], sys.argv[2]
def load(folder):
    # the index's newest generation (INDEX/gen-N/: docs/retrieval.md)
    gens = sorted((d for d in os.listdir(folder) if d.startswith("gen-")), key=lambda d: int(d[4:]))
    folder = os.path.join(folder, gens[-1]) if gens else folder
    raw = open(os.path.join(folder, "embeddings.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    name = [k for k in header if k != "__metadata__"][0]
    meta = header[name]
    a, b = meta["data_offsets"]
    x = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(meta["shape"])
    paths = json.load(open(os.path.join(folder, "paths.json")))
    return x / np.linalg.norm(x, axis=1, keepdims=True), paths
train, train_paths = load(os.path.join(work, "idx_train"))
test, test_paths = load(os.path.join(work, "idx_test"))
images = json.load(open(refs))["images"]
by_name = {im["filename"]: im for im in images}
nearest = (test @ train.T).argmax(1)
out = []
for q, j in zip(test_paths, nearest):
    qi, ti = by_name[os.path.basename(q)], by_name[os.path.basename(train_paths[j])]
    out.append({"image_id": qi.get("cocoid", qi["imgid"]), "caption": ti["sentences"][0]["raw"]})
json.dump(out, open(os.path.join(work, "nearest.json"), "w"))
PYEOF

printf '\n| %-10s | %7s | %7s | %7s | %7s |\n|---|---|---|---|---|\n' captions BLEU-1 BLEU-4 ROUGE-L CIDEr-D
for name in model bestval nearest; do
  "$XMODAL" score --task caption --results "$WORK/$name.json" --annotations "$REFS" --out "$WORK/$name.score" >/dev/null
  /usr/bin/python3 - "$WORK/$name.score" "$name" <<'PYEOF'
import json, sys
o = json.load(open(sys.argv[1]))["overall"]
print("| %-10s | %7.1f | %7.1f | %7.1f | %7.1f |" % (sys.argv[2], 100 * o["Bleu_1"], 100 * o["Bleu_4"], 100 * o["ROUGE_L"], 100 * o["CIDEr"]))
PYEOF
done
