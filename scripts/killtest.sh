#!/usr/bin/env bash
# Crash-safety proof: trains a tiny model with a checkpoint every step, kills it with SIGKILL
# at random moments (start-up, steps, checkpoint writes, validation) N times, resumes it each
# time, and checks that
#   (a) every resume starts from a valid checkpoint (or from scratch when none was written yet),
#   (b) the final weights and optimizer state are bit-identical to an uninterrupted run's
#       (CPU, one thread),
#   (c) no temporary debris is left in the run folder,
#   (d) the TensorBoard event file holds every scalar of metrics.jsonl once, every CRC good
#       (with the test binary next to xmodal, or XMODAL_TESTS: its TensorBoardRun test).
#
#   scripts/killtest.sh [N=20] [SEED]     # N kills; exit 0 = all checks passed
# Needs the build (scripts/setup.sh) and Debian's dataset-fashion-mnist.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XMODAL="${XMODAL:-${BUILD_DIR:-$ROOT/build}/xmodal}"
XMODAL_TESTS="${XMODAL_TESTS:-$(dirname "$XMODAL")/tests/xmodal_tests}"
KILLS="${1:-20}"
SEED="${2:-$RANDOM}"
STEPS="${STEPS:-300}"
RANDOM=$SEED
WORK="$(mktemp -d /tmp/xmodal-killtest.XXXXXX)"
[[ -n "${KEEP:-}" ]] || trap 'rm -rf "$WORK"' EXIT
say() { echo "[killtest] $*"; }
fail() { echo "[killtest] FAILED: $*" >&2; exit 1; }
start_time=$SECONDS

"$XMODAL" data scenes --out "$WORK/scenes" --train 40 --val 6 --test 2 --canvas 32 \
  --max-items 3 --item-size 8:12 --seed 5 >/dev/null
# 240 questions in batches of 8: 30 steps per epoch, so the run crosses epoch boundaries.
cat >"$WORK/tiny.yaml" <<EOF
task: vqa
run: {threads: 1, seed: 11}
data: {root: $WORK/scenes, image_size: 32, workers: 1}
model:
  vision: {patch_size: 16, hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  text: {hidden: 16, layers: 1, heads: 2, intermediate: 32}
  fusion: {hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  head: {hidden: 16}
train: {batch_size: 8, max_steps: $STEPS, lr: 0.001, eval_every: 10, checkpoint_every: 1,
        keep_last: 2, log_every: 5, early_stopping: {patience: 0}}
EOF

say "uninterrupted reference run ($STEPS steps)"
t0=$(date +%s%N)
"$XMODAL" train "$WORK/tiny.yaml" --run-dir "$WORK/ref" >"$WORK/ref.log" 2>&1 ||
  fail "the reference run failed: $(tail -3 "$WORK/ref.log")"
ref_ms=$((($(date +%s%N) - t0) / 1000000))
# Each attempt lives its start-up (about twice a bare `xmodal --version`: libraries, data,
# model, checkpoint) plus up to 2/N of the run, so N kills spread over the whole run.
t0=$(date +%s%N)
"$XMODAL" --version >/dev/null
startup_ms=$((($(date +%s%N) - t0) * 2 / 1000000))
span_ms=$((ref_ms * 2 / KILLS + 1))

# Kills land in every phase: start-up, loading a checkpoint, steps, checkpoint writes (one per
# step), validation. A run that finishes before the N kills are done is checked, and another
# run of the same config starts from scratch: every run must end bit-identical to the
# reference.
run="$WORK/run"
# A run with a checkpoint is resumed; one killed before its first checkpoint starts again in the
# same folder (whatever the killed process left there).
# (It execs: run in the background or in a subshell, the process is xmodal itself.)
launch() {
  if [[ -n "$(ls -d "$run"/checkpoints/step-* 2>/dev/null)" ]]; then
    exec "$XMODAL" train --resume "$run"
  else
    exec "$XMODAL" train "$WORK/tiny.yaml" --run-dir "$run"
  fi
}
# Checks a finished run: (b) bit-identical final state, (c) no debris.
check_run() {
  for file in model.safetensors optimizer.safetensors; do
    cmp -s "$WORK/ref/last/$file" "$run/last/$file" ||
      fail "run $runs: $file differs from the uninterrupted run's"
  done
  grep -q "\"step\": *$STEPS\b" "$run/last/state.json" || fail "run $runs did not end at step $STEPS"
  # temporary files and folders start with a dot
  local debris
  debris="$(find "$run" -mindepth 1 -name '.*' ! -name .xmodal-run.lock | head -5)"  # the lock stays
  [[ -z "$debris" ]] || fail "run $runs: debris left behind: $debris"
  if [[ -x "$XMODAL_TESTS" ]]; then
    XMODAL_TB_RUN="$run" "$XMODAL_TESTS" --gtest_filter='TensorBoardRun.*' >"$WORK/tb-check.log" 2>&1 ||
      fail "run $runs: its TensorBoard events differ from metrics.jsonl: $(grep -m3 -i 'fail\|twice\|error' "$WORK/tb-check.log")"
    tb_checked=$((tb_checked + 1))
  fi
}
tb_checked=0
kills=0
attempt=0
runs=1
while ((kills < KILLS)); do
  attempt=$((attempt + 1))
  launch >"$WORK/attempt-$attempt.log" 2>&1 &
  pid=$!
  if ((RANDOM % 4 == 0)); then  # a quarter in start-up and the first steps after a resume
    delay_ms=$((RANDOM % 1500))
  else
    delay_ms=$((startup_ms + (RANDOM * 32768 + RANDOM) % span_ms))
  fi
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -KILL "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    step="$(grep -o 'step [0-9]*/' "$WORK/attempt-$attempt.log" | tail -1 || true)"
    say "kill $kills/$KILLS after ${delay_ms} ms (${step:-before the first step})"
  elif wait "$pid"; then
    say "run $runs finished before kill $((kills + 1)): checked, then a fresh run"
    check_run
    rm -rf "$run"
    runs=$((runs + 1))
  else
    fail "attempt $attempt exited with an error: $(tail -3 "$WORK/attempt-$attempt.log")"
  fi
done
say "final resume to the end"
(launch) >"$WORK/final.log" 2>&1 || fail "the final run failed: $(tail -3 "$WORK/final.log")"
check_run

# (a) every resume loaded a valid checkpoint: none failed (checked above), and each one that
# got that far logged the step it resumed at
resumes="$(cat "$WORK"/attempt-*.log "$WORK"/final.log | grep -c "resumed at step" || true)"
loads="$(cat "$WORK"/attempt-*.log "$WORK"/final.log | grep -c "\[train\] loading" || true)"
((resumes > 0 || kills == 0)) || fail "no run resumed from a checkpoint"

# A process killed after an early stop's checkpoint but before it exited: resuming that
# checkpoint must not train on (it once did, until the next evaluation stopped it again).
"$XMODAL" train "$WORK/tiny.yaml" --run-dir "$WORK/early" --set train.early_stopping.patience=1 \
  --set train.eval_every=5 >"$WORK/early.log" 2>&1 || fail "early-stopping run: $(tail -2 "$WORK/early.log")"
grep -q "early stopping" "$WORK/early.log" || fail "the early-stopping run did not stop early"
cp "$WORK/early/last/model.safetensors" "$WORK/early.safetensors"
"$XMODAL" train --resume "$WORK/early" >"$WORK/early-resume.log" 2>&1 ||
  fail "resuming an early-stopped run: $(tail -2 "$WORK/early-resume.log")"
cmp -s "$WORK/early.safetensors" "$WORK/early/last/model.safetensors" ||
  fail "resuming an early-stopped run trained on"

say "PASSED: $kills kills over $runs runs, $loads checkpoint loads, $resumes resumes that" \
  "reached training; every run ended bit-identical (weights, optimizer state), no debris," \
  "TensorBoard events = metrics.jsonl in $tb_checked run(s) ($((SECONDS - start_time)) s, seed $SEED)"
