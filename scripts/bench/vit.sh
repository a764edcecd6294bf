#!/usr/bin/env bash
# ViT forward and forward+backward throughput: xmodal vs torchvision, same sizes, same run.
#   scripts/bench/vit.sh [--batch 32 --image 112 --seconds 5 ...]
# Needs the build (scripts/setup.sh) and Debian's python3-torch + python3-torchvision
# (installed here if missing). The two sides alternate twice; the table shows the best of each.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ARGS=("$@")
THREADS="$(nproc)"

if ! /usr/bin/python3 -c "import torch, torchvision" 2>/dev/null; then
  SUDO=(); [[ $EUID -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" apt-get install -y -q python3-torch python3-torchvision >/dev/null
fi
[[ -x "$BUILD_DIR/xmodal_bench_vit" ]] || cmake -DXMODAL_BENCH=ON "$BUILD_DIR" >/dev/null && cmake --build "$BUILD_DIR" --target xmodal_bench_vit

out="$(mktemp)"
for round in 1 2; do
  "$BUILD_DIR/xmodal_bench_vit" --threads "$THREADS" "${ARGS[@]}" | tee -a "$out"
  /usr/bin/python3 "$ROOT/scripts/bench/vit_bench.py" --threads "$THREADS" "${ARGS[@]}" | tee -a "$out"
  # The peer with xmodal's thread split: LibTorch intra-op 1, OpenBLAS's pool on every core.
  /usr/bin/python3 "$ROOT/scripts/bench/vit_bench.py" --threads 1 --label torchvision-split \
    "${ARGS[@]}" | tee -a "$out"
done

/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
best = {}
for r in rows:
    b = best.setdefault(r["impl"], {"forward_sps": 0, "train_sps": 0})
    for k in ("forward_sps", "train_sps"):
        b[k] = max(b[k], r[k])
x = best["xmodal"]
print()
print(f"ViT image 112, patch 16, hidden 192, 6 layers, 3 heads, batch {rows[0]['batch']}, "
      f"{rows[0]['threads']} threads (best of 2 alternating rounds)")
print()
print("| measure | xmodal | torchvision, stock threads | ratio | torchvision, xmodal's thread split | ratio |")
print("|---|---|---|---|---|---|")
t, s = best["torchvision"], best["torchvision-split"]
for k, label in (("forward_sps", "forward (inference), samples/s"), ("train_sps", "forward + backward, samples/s")):
    print(f"| {label} | {x[k]:.1f} | {t[k]:.1f} | {x[k] / t[k]:.2f} | {s[k]:.1f} | {x[k] / s[k]:.2f} |")
print()
print("stock: torch.set_num_threads(cores) with OpenBLAS's own pool also on every core;")
print("split: torch.set_num_threads(1), OpenBLAS on every core (what xmodal does by default).")
PY
rm -f "$out"
