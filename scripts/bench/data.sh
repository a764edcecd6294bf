#!/usr/bin/env bash
# Data pipeline figures: loader images/s (decode + augmentation + tokenize, 1 and 2 workers)
# and the time to parse a VQA-v2-sized split (~444k questions, generated on first run).
#   scripts/bench/data.sh [WORK_DIR]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
cmake -DXMODAL_BENCH=ON "$BUILD_DIR" >/dev/null && cmake --build "$BUILD_DIR" --target xmodal_bench_data >/dev/null
"$BUILD_DIR/xmodal_bench_data" "${1:-/tmp/xmodal-bench-data}"
