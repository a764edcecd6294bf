#!/usr/bin/env bash
# The CUDA build, in one command: `xmodal` and the test binary against the pinned LibTorch's CUDA
# libraries (libtorch_cuda; scripts/libtorch.lock) and this machine's CUDA toolkit, in
# build-cuda/ (CUDA_BUILD_DIR). These machines have no GPU, so here it is compiled and linked
# only (CI runs it from scripts/test.sh); scripts/device_check.sh runs it on a GPU machine.
#   scripts/build_cuda.sh                 # build-cuda/xmodal, build-cuda/tests/xmodal_tests
#   BUILD_TARGET=xmodal_app scripts/build_cuda.sh   # only the binary
# Needs nvcc (CUDA 13.0 toolkit: /usr/local/cuda, or CUDAToolkit_ROOT / PATH).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CUDA_BUILD_DIR:-$ROOT/build-cuda}"

fail() {
  echo "[cuda] error: $*" >&2
  exit 1
}

"$ROOT/scripts/setup.sh" --packages-only
"$ROOT/scripts/install_libtorch.sh" --cuda >/dev/null
if ! command -v nvcc >/dev/null; then
  [[ -x /usr/local/cuda/bin/nvcc ]] || fail "no CUDA toolkit: nvcc is neither on PATH nor in /usr/local/cuda/bin"
  export PATH="/usr/local/cuda/bin:$PATH"
fi
echo "[cuda] $(nvcc --version | tail -1)"

GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
if [[ ! -f "$BUILD/CMakeCache.txt" ]]; then
  # No benchmarks; tests yes (tests/README.md: the device-agnostic ones take XMODAL_TEST_DEVICE).
  # shellcheck disable=SC2086
  cmake -S "$ROOT" -B "$BUILD" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release -DXMODAL_CUDA=ON \
    -DXMODAL_BENCH=OFF ${CMAKE_ARGS:-} >/dev/null
fi
targets=(${BUILD_TARGET:-xmodal_app xmodal_tests})
echo "[cuda] building ${targets[*]} in $BUILD"
cmake --build "$BUILD" --parallel "$(nproc)" --target "${targets[@]}"
readelf -d "$BUILD/xmodal" | grep -q 'libtorch_cuda.so' ||
  fail "$BUILD/xmodal is not linked against libtorch_cuda.so"
echo "[cuda] done: $BUILD/xmodal (linked against libtorch_cuda.so; run it on a GPU machine:" \
  "scripts/device_check.sh)"
