#!/usr/bin/env bash
# The quickstart before and after a LibTorch change, in one run on this machine: two xmodal
# binaries (say the last build on LibTorch 1.13 and the current one) each pretrain the image
# encoder (configs/pretrain_fashion.yaml), train configs/quickstart.yaml from it and evaluate the
# best checkpoint on the test split, one after the other, on the same data and seeds. Prints
# each one's training samples/s (the trainer's "done:" line), its test accuracy, and the ratios.
#   scripts/bench/libtorch_compare.sh OLD_XMODAL NEW_XMODAL [--set k=v ...]
# Runs into runs/compare-old and runs/compare-new (removed first); ~2 x 8 min on 2 cores.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
cd "$ROOT"
[[ $# -ge 2 ]] || {
  echo "usage: $0 OLD_XMODAL NEW_XMODAL [--set k=v ...]" >&2
  exit 2
}
OLD="$1"
NEW="$2"
shift 2
for b in "$OLD" "$NEW"; do
  [[ -x "$b" ]] || {
    echo "libtorch_compare: $b is not an executable" >&2
    exit 2
  }
done
if [[ ! -f data/fashion-scenes/v2_mscoco_test_annotations.json ]]; then
  "$NEW" --log-level warn data scenes --out data/fashion-scenes
fi

declare -A SPS ACC LT SECS
for which in old new; do
  bin="$OLD"
  [[ $which == new ]] && bin="$NEW"
  W="runs/compare-$which"
  rm -rf "$W"
  LT[$which]="$("$bin" info | head -1)"
  start=$SECONDS
  "$bin" --log-level warn train configs/pretrain_fashion.yaml --run-dir "$W/pretrain" >/dev/null
  "$bin" train configs/quickstart.yaml --run-dir "$W/quickstart" \
    --set "model.vision.init_from=$W/pretrain" "$@" 2>&1 | tee "$W.train.log" | grep -E "\] done:" || true
  "$bin" --log-level warn eval --checkpoint "$W/quickstart/best" --split test --out "$W/eval-test" >/dev/null
  SECS[$which]=$((SECONDS - start))
  SPS[$which]="$(sed -nE 's/.*\] done: .*\(([0-9.]+) samples\/s.*/\1/p' "$W.train.log" | tail -1)"
  ACC[$which]="$(python3 -c "import json,sys; m=json.load(open(sys.argv[1])); print(m['metrics']['accuracy'] * 100)" "$W/eval-test/metrics.json")"
done

echo
"$NEW" info | sed -n '3p'
printf '%-6s %-45s %12s %14s %8s\n' run binary "samples/s" "test accuracy" seconds
for which in old new; do
  printf '%-6s %-45s %12s %14s %8s\n' "$which" "${LT[$which]}" "${SPS[$which]}" "${ACC[$which]}" "${SECS[$which]}"
done
python3 - "${SPS[old]}" "${SPS[new]}" "${ACC[old]}" "${ACC[new]}" <<'EOF'
import sys
so, sn, ao, an = map(float, sys.argv[1:5])
print(f"new/old samples/s: {sn / so:.3f}x; test accuracy new - old: {an - ao:+.2f} points")
EOF
