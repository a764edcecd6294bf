#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer (clang, ASan + UBSan):
#   config, vqa, coco, safetensors, idx, wordpiece, word_tokenizer, image, torch_pickle.
#
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]   # SECONDS per target; all targets by default
#
# Builds into build-fuzz (clang, -DXMODAL_FUZZ=ON; the first build takes ~25 min on 2 cores).
# Each target starts from its seed corpus in tests/fuzz/corpus/TARGET; new inputs go to
# build-fuzz/corpus/TARGET. A crash, leak, sanitizer report or timeout stops that target and
# leaves the input in build-fuzz/artifacts/TARGET: copy it to tests/fuzz/regressions/TARGET/
# (the unit tests replay that folder) and fix the bug. Prints executions and coverage per
# target; exits 1 if any target found something.
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${FUZZ_BUILD_DIR:-$ROOT/build-fuzz}"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(config vqa coco safetensors idx wordpiece word_tokenizer image torch_pickle)

if [[ ! -f "$BUILD/build.ninja" ]]; then
  CC=clang CXX=clang++ cmake -S "$ROOT" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DXMODAL_FUZZ=ON -DXMODAL_BUILD_TESTS=OFF -DXMODAL_BUILD_BENCH=OFF >/dev/null || exit 1
fi
cmake --build "$BUILD" --target "${TARGETS[@]/#/fuzz_}" || exit 1

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
found=0
printf '| target | seconds | executions | exec/s | coverage (edges) | corpus | result |\n|---|---|---|---|---|---|---|\n' >"$BUILD/fuzz-report.md"
for target in "${TARGETS[@]}"; do
  corpus="$BUILD/corpus/$target"
  artifacts="$BUILD/artifacts/$target"
  mkdir -p "$corpus" "$artifacts"
  log="$BUILD/fuzz-$target.log"
  echo "[fuzz] $target for ${SECONDS_PER_TARGET} s"
  "$BUILD/fuzz/fuzz_$target" "$corpus" "$ROOT/tests/fuzz/corpus/$target" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  rc=$?
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
  speed="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)"
  size="$(ls "$corpus" | wc -l)"
  result="clean"
  if ((rc != 0)); then
    found=1
    result="**FOUND** ($(ls "$artifacts" | head -3 | tr '\n' ' '); see $log)"
  fi
  echo "| $target | $SECONDS_PER_TARGET | $execs | $speed | $cov | $size | $result |" | tee -a "$BUILD/fuzz-report.md"
done
echo
cat "$BUILD/fuzz-report.md"
exit "$found"
