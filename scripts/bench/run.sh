#!/usr/bin/env bash
# xmodal vs the same model in PyTorch (Python), one command, one run, one markdown table:
# matmul ceilings (fp32, bf16), training and inference throughput (fp32, bf16, int8), achieved
# GFLOP/s, epoch time with the loader, predict cold start, peak memory. ~20-25 minutes on 2 cores.
#
#   scripts/bench/run.sh                       # configs/quickstart.yaml
#   ROUNDS=3 SECONDS_PER_RUN=15 EPOCH_STEPS=0 scripts/bench/run.sh   # longer, a whole epoch
#
# Needs the build (scripts/setup.sh) and the scenes set (built here if missing). The peer is the
# PyPI torch of xmodal's LibTorch version in a venv made once (scripts/bench/peer_venv.sh). How
# each figure is measured and the FLOP formula: scripts/bench/run.py.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
cd "$ROOT"

PEER_PYTHON="$("$ROOT/scripts/bench/peer_venv.sh")"
export PEER_PYTHON
cmake -DXMODAL_BENCH=ON "$BUILD_DIR" >/dev/null && cmake --build "$BUILD_DIR" --target xmodal_app xmodal_bench_model >/dev/null
if [[ ! -f data/fashion-scenes/v2_mscoco_train_annotations.json ]]; then
  "$BUILD_DIR/xmodal" data scenes --out data/fashion-scenes
fi
exec python3 "$ROOT/scripts/bench/run.py"
