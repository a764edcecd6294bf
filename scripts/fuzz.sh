#!/usr/bin/env bash
# Fuzzes every parser of untrusted input with libFuzzer (clang, ASan + UBSan):
#   config, vqa, coco, safetensors, idx, wordpiece, word_tokenizer, image, torch_pickle,
#   checkpoint.
#
#   scripts/fuzz.sh [SECONDS=60] [TARGET...]   # SECONDS per target; all targets by default
#
# Builds into build-san (scripts/san_build.sh: clang, -DXMODAL_FUZZ=ON; the build that
# scripts/sanitize.sh shares; the first one takes ~6 min on 2 cores).
# Each target starts from its seed corpus in tests/fuzz/corpus/TARGET; new inputs go to
# build-san/corpus/TARGET. A crash, leak, sanitizer report or timeout stops that target and
# leaves the input in build-san/artifacts/TARGET: copy it to tests/fuzz/regressions/TARGET/
# (the unit tests replay that folder) and fix the bug. Prints executions and coverage per
# target (build-san/fuzz-report.md); exits 1 if any target found something. Runs FUZZ_JOBS
# targets at once (default: the number of cores).
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${SAN_BUILD_DIR:-$ROOT/build-san}"
SECONDS_PER_TARGET="${1:-60}"
shift || true
TARGETS=("$@")
((${#TARGETS[@]})) || TARGETS=(config vqa coco safetensors idx wordpiece word_tokenizer image torch_pickle checkpoint serve_request)

SAN_BUILD_DIR="$BUILD" "$ROOT/scripts/san_build.sh" "${TARGETS[@]/#/fuzz_}" || exit 1

export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:allocator_may_return_null=1:detect_odr_violation=0}"
# The same suppressions as scripts/sanitize.sh: one-time allocations of uninstrumented libraries.
export LSAN_OPTIONS="${LSAN_OPTIONS:-suppressions=$ROOT/tests/sanitizer/lsan.supp:print_suppressions=0}"
export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
JOBS="${FUZZ_JOBS:-$(nproc)}"

# One target: fuzz, then write its report row to $BUILD/fuzz-TARGET.row; returns 1 on a finding.
fuzz_one() {
  local target="$1" corpus="$BUILD/corpus/$1" artifacts="$BUILD/artifacts/$1" log="$BUILD/fuzz-$1.log"
  mkdir -p "$corpus" "$artifacts"
  echo "[fuzz] $target for ${SECONDS_PER_TARGET} s"
  "$BUILD/fuzz/fuzz_$target" "$corpus" "$ROOT/tests/fuzz/corpus/$target" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=10 -rss_limit_mb=4096 -max_len=65536 \
    -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1
  local rc=$? execs speed cov size result="clean"
  execs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
  speed="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)"
  cov="$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)"
  size="$(ls "$corpus" | wc -l)"
  if ((rc != 0)); then
    result="**FOUND** ($(ls "$artifacts" | head -3 | tr '\n' ' '); see $log)"
    # CI keeps only what is printed: the report and the input itself, so it can be replayed.
    {
      echo "[fuzz] $target found something; the end of $log:"
      grep -v -E '^#[0-9]+' "$log" | tail -n 60
      for input in "$artifacts"/*; do
        [[ -f "$input" ]] || continue
        echo "[fuzz] $(basename "$input") ($(stat -c %s "$input") bytes), base64 (base64 -d > FILE):"
        head -c 16384 "$input" | base64 -w 100
      done
    } >&2
  fi
  echo "| $target | $SECONDS_PER_TARGET | $execs | $speed | $cov | $size | $result |" | tee "$BUILD/fuzz-$target.row"
  return $((rc != 0))
}

# FUZZ_JOBS targets at a time (default: one per core); each is one single-threaded process.
pids=()
for target in "${TARGETS[@]}"; do
  while (($(jobs -rp | wc -l) >= JOBS)); do wait -n; done
  fuzz_one "$target" &
  pids+=($!)
done
found=0
for pid in "${pids[@]}"; do wait "$pid" || found=1; done

{
  printf '| target | seconds | executions | exec/s | coverage (edges) | corpus | result |\n'
  printf '|---|---|---|---|---|---|---|\n'
  for target in "${TARGETS[@]}"; do cat "$BUILD/fuzz-$target.row"; done
} >"$BUILD/fuzz-report.md"
echo
cat "$BUILD/fuzz-report.md"
exit "$found"
