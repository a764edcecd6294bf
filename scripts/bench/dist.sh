#!/usr/bin/env bash
# Training throughput of the quickstart model on this machine, same global batch (64):
#   1 process (2 threads)  vs  2 processes (--nproc 2, Gloo over loopback, 1 thread each)
# Prints a markdown table of samples/s (the mean over all STEPS optimizer steps, from
# metrics.jsonl). On 2 cores no speed-up is expected from 2 processes: the test of
# correctness is tests/train/distributed_test.cpp.
#   scripts/bench/dist.sh [STEPS]        # default 60
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
XMODAL="${XMODAL:-$ROOT/build/xmodal}"
STEPS="${1:-60}"
OUT="${OUT:-runs/bench-dist}"
cd "$ROOT"
[[ -x "$XMODAL" ]] || { echo "dist.sh: build first (scripts/setup.sh)" >&2; exit 1; }
[[ -f data/fashion-scenes/v2_mscoco_train_annotations.json ]] ||
  "$XMODAL" data scenes --out data/fashion-scenes

rate() {  # rate RUN_DIR -> samples/s of the last train record
  sed -n 's/.*"samples_per_s":\([0-9.eE+-]*\).*/\1/p' "$1/metrics.jsonl" | tail -1 |
    awk '{ printf "%.0f", $1 }'
}

run() {  # run NAME ARGS... -> samples/s
  local name=$1
  shift
  rm -rf "${OUT:?}/$name"
  "$XMODAL" --log-level warn train configs/quickstart.yaml --run-dir "$OUT/$name" \
    --set model.vision.init_from= --set train.max_steps="$STEPS" --set train.warmup=0 \
    --set train.eval_every=100000 --set train.checkpoint_every=100000 \
    --set train.log_every="$STEPS" "$@" >/dev/null
  rate "$OUT/$name"
}

one=$(run one --set run.threads=2 --set train.batch_size=64)
two=$(run two --nproc 2 --set run.threads=1 --set train.batch_size=32)

echo
echo "Quickstart model, global batch 64, $STEPS steps, $(nproc) cores:"
echo
echo "| setup | samples/s | vs 1 process fp32 |"
echo "|---|---|---|"
echo "| 1 process, 2 threads, fp32 | $one | 1.00 |"
awk -v a="$two" -v b="$one" 'BEGIN { printf "| 2 processes (--nproc 2, Gloo), 1 thread each | %s | %.2f |\n", a, a / b }'
