#!/usr/bin/env bash
# Matrix-product libraries at the quickstart model's shapes (scripts/bench/gemm_bench.cpp):
# OpenBLAS with every kernel table this CPU runs, BLIS, oneDNN's sgemm and xmodal's routing
# (core/gemm.h), GFLOP/s per shape class, in one run (~1-2 min on 2 cores).
#
#   scripts/bench/gemm.sh [--threads 2] [--rounds 3] [--seconds 0.2]
#
# Installs Debian's libblis4-openmp if missing (only this benchmark uses it).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
if ! dpkg-query -W -f='${Status}' libblis4-openmp 2>/dev/null | grep -q "install ok installed"; then
  SUDO=(); [[ $EUID -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" apt-get install -y -q libblis4-openmp >/dev/null
fi
cmake -DXMODAL_BENCH=ON "$BUILD_DIR" >/dev/null && cmake --build "$BUILD_DIR" --target xmodal_bench_gemm >/dev/null
exec "$BUILD_DIR/xmodal_bench_gemm" "$@"
