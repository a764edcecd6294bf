#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, cli and slow) with CTest; then, for
# a full run, the unit tests again under AddressSanitizer + UBSan (scripts/sanitize.sh) and every
# libFuzzer target for a short time (scripts/fuzz.sh), both in the clang build build-san.
#   scripts/test.sh                 # everything (what CI runs; ~23 min on a fresh 2-core machine)
#   scripts/test.sh -L unit         # extra arguments go to ctest, and only the normal build runs
#   XMODAL_TEST_SANITIZERS=0 scripts/test.sh    # everything but the sanitizer build
#   XMODAL_FUZZ_SECONDS=20          # seconds per fuzz target in the full run (default 20)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

"$ROOT/scripts/setup.sh"
(cd "$BUILD_DIR" && ctest --output-on-failure --parallel "$(nproc)" --timeout 900 "$@")
if ((!$#)) && [[ "${XMODAL_TEST_SANITIZERS:-1}" != 0 ]]; then
  echo "[test] unit tests under ASan + UBSan (scripts/sanitize.sh)"
  "$ROOT/scripts/sanitize.sh"
  echo "[test] every fuzz target for ${XMODAL_FUZZ_SECONDS:-20} s (scripts/fuzz.sh)"
  "$ROOT/scripts/fuzz.sh" "${XMODAL_FUZZ_SECONDS:-20}"
fi
