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
[[ -x "$BUILD_DIR/xmodal_bench_vit" ]] || cmake --build "$BUILD_DIR" --target xmodal_bench_vit

out="$(mktemp)"
for round in 1 2; do
  "$BUILD_DIR/xmodal_bench_vit" --threads "$THREADS" "${ARGS[@]}" | tee -a "$out"
  /usr/bin/python3 "$ROOT/scripts/bench/vit_bench.py" --threads "$THREADS" "${ARGS[@]}" | tee -a "$out"
done

/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
best = {}
for r in rows:
    b = best.setdefault(r["impl"], {"forward_sps": 0, "train_sps": 0})
    for k in ("forward_sps", "train_sps"):
        b[k] = max(b[k], r[k])
x, t = best["xmodal"], best["torchvision"]
print()
print(f"ViT image 112, patch 16, hidden 192, 6 layers, 3 heads, batch {rows[0]['batch']}, "
      f"{rows[0]['threads']} threads (best of 2 alternating rounds)")
print()
print("| measure | xmodal (samples/s) | torchvision (samples/s) | xmodal / torchvision |")
print("|---|---|---|---|")
for k, label in (("forward_sps", "forward (inference)"), ("train_sps", "forward + backward")):
    print(f"| {label} | {x[k]:.1f} | {t[k]:.1f} | {x[k] / t[k]:.2f} |")
PY
rm -f "$out"
