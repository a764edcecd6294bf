#!/usr/bin/env bash
# Installs what is missing, builds, and runs every test (unit, cli and slow) with CTest; then, for
# a full run, the CUDA build (scripts/build_cuda.sh: compile and link only, build-cuda/), the unit
# tests again under AddressSanitizer + UBSan (scripts/sanitize.sh) and every libFuzzer target for
# a short time (scripts/fuzz.sh), both in the clang build build-san.
#   scripts/test.sh                 # everything (what CI runs; ~25 min on a fresh 2-core machine)
#   scripts/test.sh -L unit         # extra arguments go to ctest, and only the normal build runs
#   XMODAL_TEST_SANITIZERS=0 scripts/test.sh    # everything but the sanitizer build
#   XMODAL_TEST_CUDA_BUILD=0 scripts/test.sh     # everything but the CUDA build
#   XMODAL_FUZZ_SECONDS=20          # seconds per fuzz target in the full run (default 20)
# A failing stage does not hide the next ones: every stage runs (a stage whose build failed is
# reported as such), the summary at the end lists each stage's result and time, and the exit
# status is that of the first failing stage (0 when all passed).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"

names=()
results=()
first_failure=0

# stage NAME COMMAND...: runs it, records "ok" or "FAILED (rc N)" and its time.
stage() {
  local name="$1"
  shift
  local start=$SECONDS rc=0
  echo "[test] === $name: $*"
  "$@" || rc=$?
  local took=$((SECONDS - start))
  names+=("$name")
  if ((rc == 0)); then
    results+=("ok (${took} s)")
  else
    results+=("FAILED (rc $rc, ${took} s)")
    ((first_failure == 0)) && first_failure=$rc
  fi
  return "$rc"
}

ctest_stage() {
  (cd "$BUILD_DIR" && ctest --output-on-failure --parallel "$(nproc)" --timeout 900 "$@")
}

if stage "setup + build" "$ROOT/scripts/setup.sh"; then
  stage "ctest ${*:-(unit, cli, slow)}" ctest_stage "$@"
else
  names+=("ctest")
  results+=("not run (the build failed)")
fi
if ((!$#)) && [[ "${XMODAL_TEST_CUDA_BUILD:-1}" != 0 ]]; then
  stage "CUDA build, compile and link (scripts/build_cuda.sh)" "$ROOT/scripts/build_cuda.sh"
fi
if ((!$#)) && [[ "${XMODAL_TEST_SANITIZERS:-1}" != 0 ]]; then
  stage "ASan + UBSan (scripts/sanitize.sh)" "$ROOT/scripts/sanitize.sh"
  stage "fuzz ${XMODAL_FUZZ_SECONDS:-20} s per target (scripts/fuzz.sh)" \
    "$ROOT/scripts/fuzz.sh" "${XMODAL_FUZZ_SECONDS:-20}"
fi

echo
echo "[test] summary (OPENBLAS_CORETYPE=${OPENBLAS_CORETYPE-<unset>}," \
  "OPENBLAS_L2_SIZE=${OPENBLAS_L2_SIZE-<unset>}):"
for i in "${!names[@]}"; do
  printf '[test]   %-60s %s\n' "${names[$i]}" "${results[$i]}"
done
if ((first_failure)); then
  echo "[test] FAILED"
  exit "$first_failure"
fi
echo "[test] all stages passed"
