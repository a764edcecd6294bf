#!/usr/bin/env bash
# The bad-input matrix: every class of bad input given to the real binary must end with its
# own one-line message and exit code (1 = bad data or I/O, 2 = bad usage or config), never a
# crash or a signal, and never a partial output presented as complete.
#   tests/apps/bad_inputs.sh [BUILD_DIR]     (CTest: cli.bad_inputs)
set -uo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${1:-$ROOT/build}"
XMODAL="$BUILD_DIR/xmodal"
W="$(mktemp -d /tmp/xmodal-bad-inputs.XXXXXX)"
trap 'rm -rf "$W"' EXIT
failures=0
cases=0

# check NAME EXIT REGEX -- COMMAND...: runs COMMAND, wants exit code EXIT and output (stdout +
# stderr) matching REGEX; an error must be one line starting with "xmodal: error:".
check() {
  local name="$1" want="$2" regex="$3"
  shift 4
  cases=$((cases + 1))
  local out rc
  out="$("$@" 2>&1)"
  rc=$?
  local problem=""
  if [[ "$rc" != "$want" ]]; then
    problem="exit code $rc, expected $want"
  elif ! grep -Eq -- "$regex" <<<"$out"; then
    problem="output does not match /$regex/"
  elif [[ "$want" != 0 ]] && [[ "$(grep -c '^xmodal: error:' <<<"$out")" != 1 ]]; then
    problem="not exactly one 'xmodal: error:' line"
  fi
  if [[ -n "$problem" ]]; then
    failures=$((failures + 1))
    echo "FAIL $name: $problem"
    tail -n 5 <<<"$out" | sed 's/^/    /'
  else
    echo "ok   $name (exit $rc)"
  fi
}

# A tiny trained checkpoint and its data.
"$XMODAL" data scenes --out "$W/scenes" --train 12 --val 4 --test 4 --canvas 32 --max-items 3 \
  --item-size 8:12 --seed 3 >/dev/null || exit 1
cat >"$W/tiny.yaml" <<EOF
task: vqa
run: {threads: 1}
data: {root: $W/scenes, image_size: 32, workers: 1}
model:
  vision: {patch_size: 16, hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  text: {hidden: 16, layers: 1, heads: 2, intermediate: 32}
  fusion: {hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  head: {hidden: 16}
train: {batch_size: 8, max_steps: 2, eval_every: 2, checkpoint_every: 2}
EOF
"$XMODAL" train "$W/tiny.yaml" --run-dir "$W/run" >/dev/null 2>&1 || { echo "setup run failed"; exit 1; }
CK="$W/run/last"
IMG="$(ls "$W"/scenes/images/test/*.png | head -1)"
copy_checkpoint() { rm -rf "$W/$1" && cp -rL "$CK" "$W/$1"; }

# ---- configs ----
check missing_config 2 "/nonexistent/c.yaml" -- "$XMODAL" train /nonexistent/c.yaml
: >"$W/empty.yaml"
check empty_config 2 "empty.yaml" -- "$XMODAL" train "$W/empty.yaml"
printf 'task: vqa\nmodel: [1, 2\n' >"$W/broken.yaml"
check malformed_yaml 2 "broken.yaml:[0-9]+" -- "$XMODAL" train "$W/broken.yaml"
printf 'task: vqa\ntrain: {lr: 0.1, bogus_key: 3}\n' >"$W/unknown.yaml"
check unknown_key 2 "unknown.yaml:2: unknown key train.bogus_key" -- "$XMODAL" train "$W/unknown.yaml"
check bad_override 2 "train.batch_size" -- "$XMODAL" train "$W/tiny.yaml" --set train.batch_size=-3

# ---- annotations ----
cp -r "$W/scenes" "$W/scenes_bad"
printf '{"questions": [{"image_id": 1, "question": "x"' \
  >"$W/scenes_bad/v2_OpenEnded_mscoco_train_questions.json"
check malformed_json 1 "v2_OpenEnded_mscoco_train_questions.json" -- \
  "$XMODAL" train "$W/tiny.yaml" --run-dir "$W/r_json" --set "data.root=$W/scenes_bad"

# ---- images ----
: >"$W/zero.png"
check zero_byte_image 1 "zero.png" -- "$XMODAL" predict --checkpoint "$CK" --image "$W/zero.png" --text "how many"
head -c 300 /dev/urandom >"$W/noise.png"
check corrupt_image 1 "noise.png: not a decodable image" -- \
  "$XMODAL" predict --checkpoint "$CK" --image "$W/noise.png" --text "how many"
head -c 100 "$IMG" >"$W/cut.png"
check truncated_image 1 "cut.png" -- "$XMODAL" predict --checkpoint "$CK" --image "$W/cut.png" --text "how many"
check missing_image 1 "/nonexistent/i.png: file not found" -- \
  "$XMODAL" predict --checkpoint "$CK" --image /nonexistent/i.png --text "how many"
/usr/bin/python3 - "$W" <<'PY'
import struct, sys, zlib
chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d))
def png(path, w, h):
    raw = b"".join(b"\x00" + b"\x80" * w for _ in range(h))
    open(path, "wb").write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0))
                           + chunk(b"IDAT", zlib.compress(raw, 9)) + chunk(b"IEND", b""))
png(sys.argv[1] + "/one.png", 1, 1)
png(sys.argv[1] + "/huge.png", 10000, 10000)
open(sys.argv[1] + "/bomb.png", "wb").write(  # 900 M pixels claimed in 60 bytes
    b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 0, 0, 0, 0))
    + chunk(b"IDAT", zlib.compress(b"\x00" * 64)))
PY
check tiny_image_1x1 0 '"answers"' -- "$XMODAL" predict --checkpoint "$CK" --image "$W/one.png" --text "how many"
check huge_image_10000 0 '"answers"' -- "$XMODAL" predict --checkpoint "$CK" --image "$W/huge.png" --text "how many"
check image_claiming_900M_pixels 1 "bomb.png: 30000 x 30000 pixels is more than" -- \
  "$XMODAL" predict --checkpoint "$CK" --image "$W/bomb.png" --text "how many"

# ---- text ----
check non_utf8_text 0 '"answers"' -- "$XMODAL" predict --checkpoint "$CK" --image "$IMG" --text $'how \xff\xfe many \xc3'
check very_long_text 0 '"answers"' -- "$XMODAL" predict --checkpoint "$CK" --image "$IMG" \
  --text "$(printf "how many shirts %.0s" $(seq 1 7000))"
printf '{"image": "%s", "text": "how many"}\n{"image": "%s", "text": \n' "$IMG" "$IMG" >"$W/bad.jsonl"
check malformed_jsonl 1 "1 of 2 inputs failed.*line 2" -- "$XMODAL" predict --checkpoint "$CK" --input "$W/bad.jsonl"

# ---- checkpoints ----
mkdir -p "$W/empty_ck"
check empty_checkpoint 1 "empty_ck" -- "$XMODAL" predict --checkpoint "$W/empty_ck" --image "$IMG" --text x
copy_checkpoint ck_cut
truncate -s 1000 "$W/ck_cut/model.safetensors"
check truncated_checkpoint 1 "model.safetensors" -- "$XMODAL" predict --checkpoint "$W/ck_cut" --image "$IMG" --text x
copy_checkpoint ck_flip
/usr/bin/python3 - "$W/ck_flip/model.safetensors" <<'PY'
import sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read()); b[len(b) - 7] ^= 0x10; open(p, "wb").write(b)
PY
check bit_flipped_checkpoint 1 "model.safetensors.*(crc32|checksum)" -- \
  "$XMODAL" predict --checkpoint "$W/ck_flip" --image "$IMG" --text x
copy_checkpoint ck_shape
sed -i 's/^\(  *\)mlp_dim: 32/\1mlp_dim: 48/' "$W/ck_shape/config.yaml"
check wrong_tensor_shapes 1 "shape|size" -- "$XMODAL" predict --checkpoint "$W/ck_shape" --image "$IMG" --text x
copy_checkpoint ck_nostate
rm "$W/ck_nostate/state.json"
check checkpoint_without_state 1 "state.json" -- "$XMODAL" predict --checkpoint "$W/ck_nostate" --image "$IMG" --text x

# ---- where results go ----
check unwritable_run_dir 1 "/etc/hostname/run" -- "$XMODAL" train "$W/tiny.yaml" --run-dir /etc/hostname/run
check full_disk 1 "(File too large|No space left)" -- \
  bash -c "ulimit -f 40; exec \"$XMODAL\" train \"$W/tiny.yaml\" --run-dir \"$W/r_full\""
if [[ -d "$W/r_full/checkpoints" ]]; then  # nothing half-written may look like a checkpoint
  for d in "$W"/r_full/checkpoints/step-*; do
    [[ -e "$d" ]] || continue
    "$XMODAL" eval --checkpoint "$d" --split val >/dev/null 2>&1 &&
      { failures=$((failures + 1)); echo "FAIL full_disk: $d is presented as a checkpoint"; }
  done
fi

echo "$((cases - failures))/$cases bad-input cases behave"
((failures == 0))
