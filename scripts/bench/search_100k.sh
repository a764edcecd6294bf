#!/usr/bin/env bash
# `xmodal search` from the command line over an index of 100,000 images: the wall time of one
# text query, start-up (LibTorch, the checkpoint, the index files) included. The index is the
# scenes test split indexed by CHECKPOINT, its rows repeated to N with unit noise (the search
# path reads and scores every row the same whatever they hold).
#   scripts/bench/search_100k.sh [CHECKPOINT] [N]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
XMODAL="${XMODAL:-$ROOT/build/xmodal}"
CKPT="${1:-$ROOT/runs/quickstart_retrieval/best}"
N="${2:-100000}"
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
"$XMODAL" --log-level warn index --checkpoint "$CKPT" --split test --out "$W/index" >/dev/null
/usr/bin/python3 - "$W/index" "$N" <<'PY'
import json, math, random, struct, sys, zlib, os
d, n = os.path.join(sys.argv[1], os.readlink(os.path.join(sys.argv[1], "current"))), int(sys.argv[2])
raw = open(f"{d}/embeddings.safetensors", "rb").read()
hn = struct.unpack("<Q", raw[:8])[0]
h = json.loads(raw[8:8 + hn])["embeddings"]
rows, dim = h["shape"]
a, b = h["data_offsets"]
base = struct.unpack(f"<{rows * dim}f", raw[8 + hn + a:8 + hn + b])
random.seed(1)
out = bytearray()
for i in range(n):
    v = [x + random.gauss(0, 0.05) for x in base[(i % rows) * dim:(i % rows + 1) * dim]]
    s = math.sqrt(sum(x * x for x in v))
    out += struct.pack(f"<{dim}f", *[x / s for x in v])
header = json.dumps({"embeddings": {"dtype": "F32", "shape": [n, dim], "data_offsets": [0, len(out)]}}).encode()
header += b" " * (-len(header) % 8)
open(f"{d}/embeddings.safetensors", "wb").write(struct.pack("<Q", len(header)) + header + out)
paths = json.load(open(f"{d}/paths.json"))
json.dump([paths[i % rows] + f"#{i}" for i in range(n)], open(f"{d}/paths.json", "w"))
m = json.load(open(f"{d}/manifest.json"))
m["count"] = n
for name in m["files"]:  # the index's checksums, as `xmodal index` writes them
    data = open(f"{d}/{name}", "rb").read()
    m["files"][name] = {"bytes": len(data), "crc32": "%08x" % (zlib.crc32(data) & 0xffffffff)}
json.dump(m, open(f"{d}/manifest.json", "w"), indent=2)
PY
for run in 1 2 3; do
  TIMEFORMAT="search over $N indexed images, run $run: %R s wall (start-up included)"
  time "$XMODAL" --log-level warn search --index "$W/index" --text "a bag at the top left." \
    --top-k 10 >/dev/null
done
