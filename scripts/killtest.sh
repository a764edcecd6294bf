#!/usr/bin/env bash
# Crash-safety proof: trains a tiny model with a checkpoint every step, kills it with SIGKILL
# at random moments (start-up, steps, checkpoint writes, validation) N times, resumes it each
# time, and checks that
#   (a) every resume starts from a valid checkpoint (or from scratch when none was written yet),
#   (b) the final weights and optimizer state are bit-identical to an uninterrupted run's
#       (CPU, one thread),
#   (c) no temporary debris is left in the run folder.
#
#   scripts/killtest.sh [N=20] [SEED]     # N kills; exit 0 = all checks passed
# Needs the build (scripts/setup.sh) and Debian's dataset-fashion-mnist.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
XMODAL="${XMODAL:-${BUILD_DIR:-$ROOT/build}/xmodal}"
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
# Each attempt lives ~700 ms of start-up plus up to 2/N of the run, so N kills spread over it.
span_ms=$((ref_ms * 2 / KILLS + 1))

# Kills land in every phase: start-up, loading a checkpoint, steps, checkpoint writes (one per
# step), validation. A run that finishes before its kill ends the loop early.
run="$WORK/run"
# A run with a checkpoint is resumed; one killed before its first checkpoint starts again in the
# same folder (whatever the killed process left there).
launch() {
  if [[ -n "$(ls -d "$run"/checkpoints/step-* 2>/dev/null)" ]]; then
    "$XMODAL" train --resume "$run"
  else
    "$XMODAL" train "$WORK/tiny.yaml" --run-dir "$run"
  fi
}
kills=0
finished=0
attempt=0
while ((kills < KILLS)); do
  attempt=$((attempt + 1))
  launch >"$WORK/attempt-$attempt.log" 2>&1 &
  pid=$!
  if ((RANDOM % 4 == 0)); then  # a quarter in start-up and the first steps after a resume
    delay_ms=$((RANDOM % 1500))
  else
    delay_ms=$((700 + (RANDOM * 32768 + RANDOM) % span_ms))
  fi
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  # the launch subshell's child is the xmodal process
  child="$(pgrep -P "$pid" || true)"
  if [[ -n "$child" ]] && kill -KILL "$child" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    kills=$((kills + 1))
    step="$(grep -o 'step [0-9]*/' "$WORK/attempt-$attempt.log" | tail -1 || true)"
    say "kill $kills/$KILLS after ${delay_ms} ms (${step:-before the first step})"
  else
    if wait "$pid"; then
      finished=1
      say "the run finished before kill $((kills + 1)); stopping the kills there"
      break
    fi
    fail "attempt $attempt exited with an error: $(tail -3 "$WORK/attempt-$attempt.log")"
  fi
done

if ((!finished)); then
  say "final run to the end"
  launch >"$WORK/final.log" 2>&1 || fail "the final run failed: $(tail -3 "$WORK/final.log")"
fi
# (a) every resume loaded a valid checkpoint: none failed (checked above), and each one that
# got that far logged the step it resumed at
resumes="$(cat "$WORK"/attempt-*.log "$WORK"/final.log 2>/dev/null | grep -c "resumed at step" || true)"
loads="$(cat "$WORK"/attempt-*.log "$WORK"/final.log 2>/dev/null | grep -c "\[train\] loading" || true)"
((resumes > 0 || kills == 0)) || fail "no run resumed from a checkpoint"

# (b) bit-identical final state
for file in model.safetensors optimizer.safetensors; do
  cmp -s "$WORK/ref/last/$file" "$run/last/$file" ||
    fail "$file differs from the uninterrupted run's"
done
grep -q "\"step\": *$STEPS\b" "$run/last/state.json" || fail "the run did not end at step $STEPS"
# (c) no debris: temporary files and folders start with a dot
debris="$(find "$run" -mindepth 1 -name '.*' | head -5)"
[[ -z "$debris" ]] || fail "debris left behind: $debris"

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

say "PASSED: $kills kills, $loads checkpoint loads, $resumes resumes that reached training, final weights and optimizer state bit-identical," \
  "no debris ($((SECONDS - start_time)) s, seed $SEED)"
