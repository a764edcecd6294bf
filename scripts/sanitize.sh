#!/usr/bin/env bash
# The unit tests under AddressSanitizer + UndefinedBehaviorSanitizer, in the clang build that
# scripts/fuzz.sh shares (build-san, scripts/san_build.sh), so the normal build stays fast.
# CI runs it from scripts/test.sh.
#   scripts/sanitize.sh [ctest args]      # default: -L unit, then cli.bad_inputs and cli.serve
# SentencePiece's tests are skipped there: its plugin needs dlopen(RTLD_DEEPBIND), which the
# sanitizer runtime refuses.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SAN_BUILD_DIR:-$ROOT/build-san}"
SAN_BUILD_DIR="$BUILD" "$ROOT/scripts/san_build.sh" xmodal_tests xmodal_app
# LibTorch, OpenMP and OpenCV are not instrumented; leaks are checked in xmodal's own code
# (tests/sanitizer/lsan.supp lists the libraries' one-time allocations).
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1:strict_string_checks=1:detect_odr_violation=0}"
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/sanitizer/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
cd "$BUILD"
if (($#)); then
  ctest --output-on-failure --timeout 1800 "$@"
else
  # The unit tests, then the bad-input matrix against the sanitized binary.
  ctest --output-on-failure --timeout 1800 -L unit
  ctest --output-on-failure --timeout 1800 -R '^cli\.(bad_inputs|serve)$'
fi
