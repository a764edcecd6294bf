#!/usr/bin/env bash
# Two xmodal binaries on the same training run, alternated round by round: the check that a
# refactor of the trainer (or anything on its path: loader, step, checkpoints) costs nothing.
# Prints each round's samples/s (the `end` record of metrics.jsonl: loop time without validation
# and checkpoints, loader waits included) and the median ratio NEW / OLD.
#
#   scripts/bench/trainer_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [STEPS]     # defaults 3, 200
#
# Runs configs/quickstart.yaml from scratch (no init_from, no validation until the last step)
# on the scenes set in data/fashion-scenes (built if missing). Needs nothing but the binaries.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
OLD="${1:?usage: trainer_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [STEPS]}"
NEW="${2:?usage: trainer_ab.sh OLD_BINARY NEW_BINARY [ROUNDS] [STEPS]}"
ROUNDS="${3:-3}"
STEPS="${4:-200}"
cd "$ROOT"
[[ -f data/fashion-scenes/v2_mscoco_train_annotations.json ]] ||
  "$NEW" data scenes --out data/fashion-scenes >/dev/null
WORK="$(mktemp -d /tmp/xmodal-ab-XXXXXX)"
trap 'rm -rf "$WORK"' EXIT

# samples/s of one run of binary $1, named $2
one_run() {
  local dir="$WORK/$2"
  "$1" train configs/quickstart.yaml --run-dir "$dir" --log-level warn \
    --set model.vision.init_from= --set train.max_steps="$STEPS" \
    --set train.eval_every=0 --set train.checkpoint_every=0 >/dev/null
  /usr/bin/python3 -c '
import json, sys
end = [json.loads(l) for l in open(sys.argv[1]) if "\"end\"" in l][-1]
print("%.1f" % end["samples_per_s"])' "$dir/metrics.jsonl"
}

"$NEW" info | grep -E '^CPU' | cut -c1-60 || true
old_rates=() new_rates=()
for ((r = 1; r <= ROUNDS; r++)); do
  # alternate which goes first, so drift in the machine's speed does not favour one side
  if ((r % 2)); then
    o=$(one_run "$OLD" "old-$r"); n=$(one_run "$NEW" "new-$r")
  else
    n=$(one_run "$NEW" "new-$r"); o=$(one_run "$OLD" "old-$r")
  fi
  old_rates+=("$o"); new_rates+=("$n")
  echo "round $r: old $o samples/s, new $n samples/s"
done
/usr/bin/python3 -c '
import statistics, sys
old = [float(x) for x in sys.argv[1].split()]
new = [float(x) for x in sys.argv[2].split()]
o, n = statistics.median(old), statistics.median(new)
print(f"median: old {o:.1f}, new {n:.1f} samples/s; new / old = {n / o:.3f} "
      f"({len(old)} rounds of '"$STEPS"' steps)")' "${old_rates[*]}" "${new_rates[*]}"
