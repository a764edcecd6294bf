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
STEPS="${STEPS:-60}"
RANDOM=$SEED
WORK="$(mktemp -d /tmp/xmodal-killtest.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
say() { echo "[killtest] $*"; }
fail() { echo "[killtest] FAILED: $*" >&2; exit 1; }
start_time=$SECONDS

"$XMODAL" data scenes --out "$WORK/scenes" --train 40 --val 6 --test 2 --canvas 32 \
  --max-items 3 --item-size 8:12 --seed 5 >/dev/null
# 240 questions in batches of 8: 30 steps per epoch, so the run crosses an epoch boundary.
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
        keep_last: 2, log_every: 5}
EOF

say "uninterrupted reference run ($STEPS steps)"
t0=$SECONDS
"$XMODAL" train "$WORK/tiny.yaml" --run-dir "$WORK/ref" >"$WORK/ref.log" 2>&1 ||
  fail "the reference run failed: $(tail -3 "$WORK/ref.log")"
ref_seconds=$((SECONDS - t0 + 1))

# Kill delays spread over a whole run's length (start-up included), so kills land in every
# phase; a run that finishes before its kill simply ends the loop early.
run="$WORK/run"
kills=0
resumes=0
finished=0
attempt=0
while ((kills < KILLS)); do
  attempt=$((attempt + 1))
  if [[ -n "$(ls -d "$run"/checkpoints/step-* 2>/dev/null)" ]]; then
    cmd=("$XMODAL" train --resume "$run")
    resumes=$((resumes + 1))
  else  # killed before its first checkpoint: start again from scratch
    rm -rf "$run"
    cmd=("$XMODAL" train "$WORK/tiny.yaml" --run-dir "$run")
  fi
  "${cmd[@]}" >"$WORK/attempt-$attempt.log" 2>&1 &
  pid=$!
  delay_ms=$((RANDOM % (ref_seconds * 1000)))
  sleep "$(printf '%d.%03d' $((delay_ms / 1000)) $((delay_ms % 1000)))"
  if kill -KILL "$pid" 2>/dev/null; then
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
  # (a) a resume that got past start-up must say where it resumed from
  if [[ "${cmd[2]}" == "--resume" ]] && grep -q "error" "$WORK/attempt-$attempt.log"; then
    fail "attempt $attempt: $(grep error "$WORK/attempt-$attempt.log" | head -2)"
  fi
done

if ((!finished)); then
  say "final resume to the end"
  "$XMODAL" train --resume "$run" >"$WORK/final.log" 2>&1 ||
    fail "the final resume failed: $(tail -3 "$WORK/final.log")"
  resumes=$((resumes + 1))
fi

# (b) bit-identical final state
for file in model.safetensors optimizer.safetensors; do
  cmp -s "$WORK/ref/last/$file" "$run/last/$file" ||
    fail "$file differs from the uninterrupted run's"
done
grep -q "\"step\": *$STEPS\b" "$run/last/state.json" || fail "the run did not end at step $STEPS"
# (c) no debris: temporary files and folders start with a dot
debris="$(find "$run" -mindepth 1 -name '.*' | head -5)"
[[ -z "$debris" ]] || fail "debris left behind: $debris"

say "PASSED: $kills kills, $resumes resumes, final weights and optimizer state bit-identical," \
  "no debris ($((SECONDS - start_time)) s, seed $SEED)"
