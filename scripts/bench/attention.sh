#!/usr/bin/env bash
# Attention at the quickstart's shapes (batch 64, width 128, 4 heads): xmodal's fused CPU
# kernel against LibTorch's scaled_dot_product_attention and the plain ATen composition,
# forward + backward and forward only, fp32 and bf16; microseconds per call, best of
# alternating rounds. Prints a markdown table.
#
#   scripts/bench/attention.sh [ROUNDS]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
ROUNDS="${1:-3}"
cmake -DXMODAL_BENCH=ON "$BUILD_DIR" >/dev/null
cmake --build "$BUILD_DIR" --target xmodal_app xmodal_bench_attention >/dev/null
echo "$("$BUILD_DIR/xmodal" info | grep -E '^(CPU|LibTorch):' | tr '\n' ' ')"
echo
echo "| shape | dtype | pass | fused (us) | SDPA (us) | composed (us) | fastest |"
echo "|---|---|---|---|---|---|---|"
RAW="$(mktemp)"
trap 'rm -f "$RAW"' EXIT
for bf16 in 0 1; do
  for backward in 1 0; do
    "$BUILD_DIR/xmodal_bench_attention" --rounds "$ROUNDS" --bf16 "$bf16" --backward "$backward"
  done
done >"$RAW"
python3 - "$RAW" <<'PY'
import json, sys
rows = {}
for line in open(sys.argv[1]):
    r = json.loads(line)
    rows.setdefault((r["shape"], r["dtype"], r["backward"]), {})[r["path"]] = r["us_per_call"]
for (shape, dtype, backward), t in rows.items():
    cells = [f"{t[p]:.0f}" if p in t else "-" for p in ("fused", "sdpa", "composed")]
    passes = "fwd + bwd" if backward else "fwd"
    print(f"| {shape} | {dtype} | {passes} | " + " | ".join(cells) + f" | {min(t, key=t.get)} |")
PY
