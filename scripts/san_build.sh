#!/usr/bin/env bash
# Builds the given targets in the one sanitizer build that scripts/sanitize.sh (unit tests) and
# scripts/fuzz.sh (libFuzzer targets) share: clang, AddressSanitizer + UndefinedBehaviorSanitizer,
# libFuzzer coverage instrumentation, in build-san (SAN_BUILD_DIR), so the normal build stays fast.
#   scripts/san_build.sh TARGET...
# Installs what is missing (scripts/setup.sh's packages plus clang and its sanitizer runtimes,
# libclang-rt-14-dev). First build: ~6 min on 2 cores (clang with precompiled LibTorch headers).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SAN_BUILD_DIR:-$ROOT/build-san}"

EXTRA_PACKAGES="clang libclang-rt-14-dev" "$ROOT/scripts/setup.sh" --packages-only
if [[ ! -f "$BUILD/build.ninja" ]]; then
  # -O1 keeps the sanitizers' reports exact and the build short; line tables name the source line.
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=Release \
    -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only -DNDEBUG" -DXMODAL_FUZZ=ON \
    -DXMODAL_BENCH=OFF >/dev/null
fi
echo "[san] building ${*} in $BUILD"
cmake --build "$BUILD" --parallel "$(nproc)" --target "$@"
