#!/usr/bin/env bash
# The CUDA build (scripts/build_cuda.sh) on a GPU machine that has no compiler, no Debian
# libraries and no network (the device tool's H100/H200: Ubuntu-like, python3 with torch 2.11
# and the NVIDIA wheels), in two halves:
#
#   scripts/device_check.sh --dry-run   # HERE: packs build-cuda's xmodal, xmodal_tests, the
#       SentencePiece plugin, every shared library they need (recursive DT_NEEDED) that the GPU
#       machine lacks and a trimmed Fashion-MNIST into ONE archive, .device/xmodal-device.tar.xz;
#       checks that it and the working tree fit the 64 MiB that may travel; unpacks it and proves
#       the library closure complete ("resolves: yes").
#   scripts/device_check.sh             # THERE, in the repository root with .device carried:
#       unpacks it to /tmp, then `xmodal info`, the device tests, quickstart training samples/s in
#       fp32 and bf16, NCCL on 2 processes when there are 2+ GPUs; ends with a summary for README.
#
# Device tool: run(command="scripts/device_check.sh", carry=[".device"], timeout_s=600): about
# 1 minute of unpacking and start-up plus at most BUDGET_S of checks (each step under `timeout`).
#
# The GPU machine provides LibTorch's own libraries (torch/lib of its python3's torch), the
# CUDA libraries of the nvidia-* wheels, the driver, glibc, libstdc++ and libgcc_s; everything
# else (OpenCV and its closure, yaml-cpp, fmt, spdlog, simdjson, OpenBLAS, sentencepiece, ...) is
# carried. scripts/device_bundle.py holds the ELF and bookkeeping parts.
#
# Variables (both halves):
#   CUDA_BUILD_DIR   the build to pack (default build-cuda; CUDA_BUILD_DIR=build packs the CPU
#                    build: a dry run only, useless on the GPU machine)
#   FASHION_MNIST    Fashion-MNIST's IDX folder (default /usr/share/datasets/fashion-mnist); its
#                    first FASHION_TRAIN (3000) / FASHION_TEST (1000) images travel
#   STRIP=0          keep the symbol tables of xmodal and xmodal_tests (default: stripped copies)
#   XZ_FLAGS         default "--x86 --lzma2=preset=9e,dict=256MiB" (smallest measured; ~4 min)
#   DEVICE_TESTS     gtest filter of the device tests (default '*Device*'), run with
#                    XMODAL_TEST_DEVICE=cuda
#   STEPS            training steps per precision (default 300), LOG_EVERY (50) steps per
#                    samples/s reading: the figure is the median of the readings after the first
#   TRAIN_SET        extra arguments for both training runs, e.g. "--set data.workers=8"
#   BUDGET_S         seconds the checks may take on the GPU machine (default 450)
#   XMODAL_DEVICE_LOGS  where the logs and summary.md go (default $OUT, which the device tool
#                    sends back, else /tmp/xmodal-device-logs)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD="${CUDA_BUILD_DIR:-$ROOT/build-cuda}"
[[ "$BUILD" == /* ]] || BUILD="$ROOT/$BUILD"
DEVICE_DIR="$ROOT/.device"
ARCHIVE="$DEVICE_DIR/xmodal-device.tar.xz"
HELPER="$ROOT/scripts/device_bundle.py"
PY="${PYTHON:-python3}"
LIMIT_MIB=64
UNPACK=/tmp/xmodal-device # the GPU machine's copy of the bundle

fail() {
  echo "[device] error: $*" >&2
  exit 1
}
warn() { echo "[device] WARNING: $*" >&2; }
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }

# The bytes that travel besides carried paths: tracked files and untracked ones git does not
# ignore (a symbolic link counts as itself), plus an ignored shared/ folder.
worktree_bytes() {
  local bytes
  bytes="$(cd "$ROOT" && git ls-files -z --cached --others --exclude-standard |
    xargs -0 -r stat -c %s -- 2>/dev/null | awk '{ s += $1 } END { print s + 0 }')"
  if [[ -d "$ROOT/shared" ]] && git -C "$ROOT" check-ignore -q shared; then
    bytes=$((bytes + $(du -sb "$ROOT/shared" | cut -f1)))
  fi
  echo "$bytes"
}

# ---------------------------------------------------------------------------------------------
# HERE: make the bundle and prove it complete.
dry_run() {
  local bin="$BUILD/xmodal" plugin="$BUILD/libxmodal_sentencepiece.so"
  local tests="$BUILD/tests/xmodal_tests"
  [[ -x "$bin" ]] || fail "no $bin: build it first (scripts/build_cuda.sh), or CUDA_BUILD_DIR=build for a dry run of the CPU build"
  [[ -f "$plugin" ]] || fail "no $plugin (it is built with xmodal)"
  local tool
  for tool in readelf ldd tar xz git sha256sum "$PY"; do
    command -v "$tool" >/dev/null || fail "'$tool' is missing here"
  done
  local cuda=yes
  if ! readelf -d "$bin" | grep -q 'libtorch_cuda\.so'; then
    cuda=no
    warn "$bin is not linked against libtorch_cuda.so (a CPU build): fine for a dry run, useless on the GPU machine (scripts/build_cuda.sh)"
  fi
  [[ -x "$tests" ]] || warn "no $tests: the bundle holds no tests, and the GPU run will skip them"

  # .device/ is ignored through .git/info/exclude (travels only when carried).
  local exclude
  exclude="$(git -C "$ROOT" rev-parse --git-path info/exclude)"
  [[ "$exclude" == /* ]] || exclude="$ROOT/$exclude"
  mkdir -p "$(dirname "$exclude")" "$DEVICE_DIR"
  grep -qxF '/.device/' "$exclude" 2>/dev/null || echo '/.device/' >>"$exclude"

  WORK="$(mktemp -d /tmp/xmodal-device-pack.XXXXXX)"
  trap 'rm -rf "$WORK" "$ARCHIVE.tmp"' EXIT
  local stage="$WORK/stage/xmodal-device"
  mkdir -p "$stage/bin/tests"
  # The layout of a build folder: the plugin next to xmodal and one folder above the tests.
  cp "$bin" "$plugin" "$stage/bin/"
  local roots=("$stage/bin/xmodal" "$stage/bin/libxmodal_sentencepiece.so")
  if [[ -x "$tests" ]]; then
    cp "$tests" "$stage/bin/tests/"
    roots+=("$stage/bin/tests/xmodal_tests")
  fi
  if [[ "${STRIP:-1}" != 0 ]] && command -v strip >/dev/null; then
    # The executables' .symtab only (~8% of their compressed size): backtraces use .dynsym.
    local executables=("$stage/bin/xmodal")
    [[ -x "$tests" ]] && executables+=("$stage/bin/tests/xmodal_tests")
    strip "${executables[@]}"
  fi

  echo "[device] collecting the shared libraries that $(basename "$BUILD")'s binaries need and the GPU machine lacks"
  "$PY" "$HELPER" collect "$stage" "${roots[@]}" >"$WORK/carried.txt"
  # The copies' DT_RPATH (this machine's openblas-openmp and LibTorch folders) becomes
  # DT_RUNPATH, searched after LD_LIBRARY_PATH, so the bundle's libraries always win there.
  local libs=()
  mapfile -t libs < <(awk -v d="$stage/lib/" '{ print d $1 }' "$WORK/carried.txt")
  "$PY" "$HELPER" runpath "${roots[@]}" "${libs[@]}"

  local fmnist="${FASHION_MNIST:-/usr/share/datasets/fashion-mnist}" data=no
  if [[ -f "$fmnist/train-images-idx3-ubyte.gz" ]]; then
    "$PY" "$HELPER" fashion "$fmnist" "$stage/fashion-mnist" "${FASHION_TRAIN:-3000}" "${FASHION_TEST:-1000}"
    data=yes
  else
    warn "no Fashion-MNIST in $fmnist (FASHION_MNIST): the GPU run cannot make a data set and will skip training"
  fi

  # The paths compiled into xmodal_tests (tests/support/paths.h.in): the GPU run links them to
  # its repository root and the unpacked binaries.
  local paths="$BUILD/tests/generated/xmodal_test_paths.h" src_dir="" bin_path=""
  if [[ -f "$paths" ]]; then
    src_dir="$(sed -n 's/^#define XMODAL_SOURCE_DIR "\(.*\)"$/\1/p' "$paths")"
    bin_path="$(sed -n 's/^#define XMODAL_BINARY "\(.*\)"$/\1/p' "$paths")"
  fi
  # shellcheck source=scripts/libtorch.lock
  source "$ROOT/scripts/libtorch.lock"
  {
    echo "XMODAL_LIBTORCH_VERSION=$XMODAL_LIBTORCH_VERSION"
    echo "XMODAL_LIBTORCH_CUDA=$XMODAL_LIBTORCH_CUDA"
    echo "CUDA_BUILD=$cuda"
    echo "FASHION_MNIST=$data"
    echo "TEST_SOURCE_DIR=$src_dir"
    echo "TEST_BINARY=$bin_path"
    echo "BUILD_DIR=$BUILD"
    echo "COMMIT=$(git -C "$ROOT" rev-parse --short HEAD)$(git -C "$ROOT" diff --quiet HEAD -- 2>/dev/null || echo -dirty)"
    echo "XMODAL_BUILT=$(date -u -r "$bin" +%Y-%m-%dT%H:%M:%SZ)"
  } >"$stage/MANIFEST"
  awk '{ print $1 }' "$WORK/carried.txt" >"$stage/CARRIED"

  echo "[device] carried libraries ($(wc -l <"$WORK/carried.txt")):"
  awk '{ printf "  %-36s %8.2f MiB  %s\n", $1, $2 / 1048576, $3 }' "$WORK/carried.txt"
  local raw_libs raw_bins raw_all
  raw_libs="$(awk '{ s += $2 } END { print s + 0 }' "$WORK/carried.txt")"
  raw_bins="$(du -sb "$stage/bin" | cut -f1)"
  raw_all="$(du -sb "$stage" | cut -f1)"
  echo "[device] raw sizes: carried libraries $(mib "$raw_libs") MiB, xmodal binaries" \
    "$(mib "$raw_bins") MiB, whole bundle $(mib "$raw_all") MiB"

  # One deterministic tar, so an unchanged bundle is not compressed again (~4 minutes).
  local tarflags=(--sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$WORK/stage")
  local flags="${XZ_FLAGS:---x86 --lzma2=preset=9e,dict=256MiB}" sum
  sum="$( (tar "${tarflags[@]}" -cf - xmodal-device | sha256sum | cut -d' ' -f1; echo "$flags") | sha256sum | cut -d' ' -f1)"
  if [[ -f "$ARCHIVE" && -f "$ARCHIVE.sha256" && "$(cat "$ARCHIVE.sha256")" == "$sum" ]]; then
    echo "[device] $ARCHIVE is up to date (same contents): not compressed again"
  else
    echo "[device] compressing (xz $flags; a few minutes)"
    local start=$SECONDS
    rm -f "$ARCHIVE" "$ARCHIVE.sha256"
    # shellcheck disable=SC2086
    tar "${tarflags[@]}" -cf - xmodal-device | xz $flags -T1 -c >"$ARCHIVE.tmp"
    mv "$ARCHIVE.tmp" "$ARCHIVE"
    echo "$sum" >"$ARCHIVE.sha256"
    echo "[device] compressed in $((SECONDS - start)) s"
  fi

  local archive_bytes carried_bytes tree_bytes total
  archive_bytes="$(stat -c %s "$ARCHIVE")"
  carried_bytes="$(du -sb "$DEVICE_DIR" | cut -f1)" # the archive, its checksum, anything else
  tree_bytes="$(worktree_bytes)"
  total=$((carried_bytes + tree_bytes))
  echo "[device] archive $ARCHIVE: $(mib "$archive_bytes") MiB ($archive_bytes bytes)"
  echo "[device] working tree (tracked + untracked, not ignored): $(mib "$tree_bytes") MiB"
  echo "[device] what travels (working tree + .device/): $(mib "$total") MiB of $LIMIT_MIB MiB"
  ((total <= LIMIT_MIB * 1048576)) ||
    fail "over the $LIMIT_MIB MiB that may travel by $(mib $((total - LIMIT_MIB * 1048576))) MiB"
  # Nothing else in .device/ (all of it is carried).
  local extra
  extra="$(find "$DEVICE_DIR" -mindepth 1 ! -name "$(basename "$ARCHIVE")" ! -name "$(basename "$ARCHIVE").sha256" | head -3)"
  [[ -z "$extra" ]] || warn "$DEVICE_DIR holds other files, which travel too: $extra"

  echo "[device] proof: unpacking the archive and resolving every DT_NEEDED in it alone"
  local check="$WORK/unpacked"
  mkdir -p "$check"
  tar -xJf "$ARCHIVE" -C "$check"
  local unpacked=("$check/xmodal-device/bin/xmodal" "$check/xmodal-device/bin/libxmodal_sentencepiece.so")
  [[ -x "$check/xmodal-device/bin/tests/xmodal_tests" ]] && unpacked+=("$check/xmodal-device/bin/tests/xmodal_tests")
  local torch_lib="${XMODAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmodal}/libtorch-$XMODAL_LIBTORCH_VERSION/lib"
  [[ -d "$torch_lib" ]] || torch_lib=""
  XMODAL_VERIFY_TORCH_LIB="$torch_lib" "$PY" "$HELPER" verify "$check/xmodal-device" "${unpacked[@]}" ||
    fail "the bundle is incomplete (above)"
  echo
  echo "[device] ready. With the device tool (leaves $((LIMIT_MIB * 1048576 - total)) bytes of room):"
  echo "  run(command=\"scripts/device_check.sh\", carry=[\".device\"], timeout_s=600)"
  [[ $cuda == yes ]] || warn "this bundle holds a CPU build: make the CUDA one (scripts/build_cuda.sh) and pack again before using device time"
}

# ---------------------------------------------------------------------------------------------
# THERE: unpack, link, run, summarise.
LOGS="${XMODAL_DEVICE_LOGS:-${OUT:-/tmp/xmodal-device-logs}}"
BUDGET_S="${BUDGET_S:-450}"
declare -a SUMMARY=()
RC=0

# step_timeout WANTED: WANTED seconds, or what is left of BUDGET_S if less (0: none left).
step_timeout() {
  local left=$((BUDGET_S - SECONDS))
  ((left < 0)) && left=0
  echo $(($1 < left ? $1 : left))
}
row() { SUMMARY+=("| $1 | $2 |"); }

device_run() {
  [[ -f "$ARCHIVE" ]] || fail "no bundle $ARCHIVE: run scripts/device_check.sh --dry-run here first, then carry .device"
  command -v "$PY" >/dev/null || fail "no $PY on this machine"
  local torch_dir
  torch_dir="$("$PY" -c 'import torch, os; print(os.path.dirname(torch.__file__))' 2>/dev/null)" ||
    fail "$PY here has no torch (import torch failed): this machine does not provide LibTorch (PYTHON=... names another python3)"

  echo "[device] unpacking $ARCHIVE into $UNPACK"
  rm -rf "$UNPACK"
  mkdir -p "$(dirname "$UNPACK")"
  if command -v xz >/dev/null; then
    tar -xJf "$ARCHIVE" -C "$(dirname "$UNPACK")"
  else
    "$PY" -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); t.extractall(sys.argv[2], **({"filter": "data"} if hasattr(tarfile, "data_filter") else {}))' \
      "$ARCHIVE" "$(dirname "$UNPACK")"
  fi
  local key value
  declare -A M=()
  while IFS='=' read -r key value; do M[$key]="$value"; done <"$UNPACK/MANIFEST"

  local site libpath d
  site="$(dirname "$torch_dir")"
  libpath="$("$PY" "$HELPER" libpath "$UNPACK"):$torch_dir/lib"
  for d in "$site"/nvidia/*/lib; do
    if [[ -d "$d" ]]; then libpath="$libpath:$d"; fi
  done
  local xmodal="$UNPACK/bin/xmodal" tests="$UNPACK/bin/tests/xmodal_tests"

  # The LibTorch it was built against (scripts/libtorch.lock) and the one here.
  local tv tcuda
  tv="$("$PY" -c 'import torch; print(torch.__version__)')"
  tcuda="$("$PY" -c 'import torch; print(torch.version.cuda)')"
  echo "[device] torch here: $tv (CUDA $tcuda) in $torch_dir; xmodal built against ${M[XMODAL_LIBTORCH_VERSION]} (CUDA ${M[XMODAL_LIBTORCH_CUDA]})"
  if [[ "${tv%%+*}" != "${M[XMODAL_LIBTORCH_VERSION]}" || "$tcuda" != "${M[XMODAL_LIBTORCH_CUDA]}" ]]; then
    echo "[device] !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
    echo "[device] !!! WARNING: torch $tv (CUDA $tcuda) here, xmodal was built against ${M[XMODAL_LIBTORCH_VERSION]} (CUDA ${M[XMODAL_LIBTORCH_CUDA]})"
    echo "[device] !!! LibTorch has no stable C++ ABI: expect undefined symbols or crashes below"
    echo "[device] !!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!"
  fi
  [[ "${M[CUDA_BUILD]}" == yes ]] || warn "the bundle holds a CPU build (CUDA_BUILD=no): the CUDA steps below will fail"

  # Every library resolves, and from the bundle, torch/lib or nvidia/*/lib.
  if command -v ldd >/dev/null; then
    local bins=("$xmodal" "$UNPACK/bin/libxmodal_sentencepiece.so") lrc=0
    [[ -x "$tests" ]] && bins+=("$tests")
    "$PY" "$HELPER" ldd-check "$libpath" "${bins[@]}" || lrc=$?
    case "$lrc" in
      0) echo "[device] libraries: every one resolves in the bundle, torch/lib, nvidia/*/lib or the base system" ;;
      2) warn "libraries resolve outside the bundle (above): they may not be the ones xmodal was built with" ;;
      *) fail "libraries missing (above): the bundle or this machine's torch is incomplete" ;;
    esac
  fi

  # xmodal_tests carries the paths it was built with (XMODAL_SOURCE_DIR, XMODAL_BINARY): point
  # them at this repository and the unpacked binaries where they do not exist here.
  link_path "${M[TEST_SOURCE_DIR]}" "$ROOT"
  if [[ -n "${M[TEST_BINARY]}" ]]; then link_path "$(dirname "${M[TEST_BINARY]}")" "$UNPACK/bin"; fi

  cd "$ROOT"
  local gpus gpu_name
  gpus="$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)"
  if [[ "$gpus" == 0 ]]; then
    gpus="$("$PY" -c 'import torch; print(torch.cuda.device_count())' 2>/dev/null || echo 0)"
  fi
  gpu_name="$(nvidia-smi --query-gpu=name,driver_version --format=csv,noheader 2>/dev/null | head -1 || true)"
  echo "[device] GPUs: $gpus (${gpu_name:-nvidia-smi gave nothing})"
  nvidia-smi -L 2>/dev/null || true

  echo "== xmodal info"
  local t
  t="$(step_timeout 60)"
  if ((t > 0)) && timeout -k 5 "$t" env LD_LIBRARY_PATH="$libpath" "$xmodal" info 2>&1 | tee /tmp/xmodal-info.log; then
    row "xmodal info" "$(head -1 /tmp/xmodal-info.log); $(grep -m1 '^devices:' /tmp/xmodal-info.log || echo 'devices: ?')"
  else
    row "xmodal info" "FAILED (exit status above)"
    RC=1
  fi

  run_tests "$tests" "$libpath"
  local scenes=/tmp/xmodal-scenes
  make_data "$xmodal" "$libpath" "$scenes"
  local p
  for p in fp32 bf16; do train_rate "$xmodal" "$libpath" "$scenes" "$p"; done
  if ((gpus >= 2)); then
    nccl_check "$xmodal" "$libpath" "$scenes"
  else
    echo "NCCL: skipped (one GPU)"
    row "NCCL, 2 processes = 1 on the combined batch" "skipped (one GPU)"
  fi

  {
    echo "### GPU check ($(date -u +%Y-%m-%d), scripts/device_check.sh)"
    echo
    echo "| | |"
    echo "| --- | --- |"
    echo "| machine | ${gpu_name:-?} ($gpus GPU), torch $tv (CUDA $tcuda) from python3's site-packages |"
    echo "| xmodal | ${M[COMMIT]} built ${M[XMODAL_BUILT]} against LibTorch ${M[XMODAL_LIBTORCH_VERSION]} (CUDA ${M[XMODAL_LIBTORCH_CUDA]}), $(wc -l <"$UNPACK/CARRIED") libraries carried |"
    printf '%s\n' "${SUMMARY[@]}"
    echo
    echo "(${SECONDS} s on the machine; logs in $LOGS)"
  } >"$LOGS/summary.md"
  echo
  echo "==================== summary (for README) ===================="
  cat "$LOGS/summary.md"
  return "$RC"
}

# link_path WANTED TARGET: makes the path WANTED (compiled into xmodal_tests) lead to TARGET.
link_path() {
  local wanted="$1" target="$2"
  [[ -n "$wanted" ]] || return 0
  if [[ -e "$wanted" || -L "$wanted" ]]; then
    [[ "$(realpath "$wanted")" == "$(realpath "$target")" ]] && return 0
    if [[ -L "$wanted" ]]; then
      ln -sfn "$target" "$wanted"
    else
      warn "$wanted exists here and is not $target: tests that use the paths compiled into xmodal_tests read it"
      return 0
    fi
  else
    if ! { mkdir -p "$(dirname "$wanted")" && ln -s "$target" "$wanted"; }; then
      warn "cannot link $wanted -> $target: tests that use compiled-in paths will fail"
      return 0
    fi
  fi
  echo "[device] $wanted -> $target (a path compiled into xmodal_tests)"
}

run_tests() {
  local tests="$1" libpath="$2" filter="${DEVICE_TESTS:-*Device*}" t start=$SECONDS rc=0
  echo "== device tests: XMODAL_TEST_DEVICE=cuda xmodal_tests --gtest_filter='$filter'"
  if [[ ! -x "$tests" ]]; then
    echo "tests: skipped (no xmodal_tests in the bundle)"
    row "device tests ($filter)" "skipped (not in the bundle)"
    return
  fi
  t="$(step_timeout 120)"
  ((t > 0)) || { row "device tests ($filter)" "skipped (time budget)"; return; }
  XMODAL_TEST_DEVICE=cuda timeout -k 10 "$t" env LD_LIBRARY_PATH="$libpath" "$tests" \
    --gtest_filter="$filter" --gtest_color=no >"$LOGS/tests.log" 2>&1 || rc=$?
  grep -E '^\[ +(OK|FAILED|SKIPPED|PASSED) +\]|^\[==========\]' "$LOGS/tests.log" | tail -60 || true
  local ran passed failed skipped
  ran="$(sed -n 's/^\[==========\] \([0-9]*\) tests\? from .* ran.*/\1/p' "$LOGS/tests.log" | tail -1)"
  passed="$(sed -n 's/^\[  PASSED  \] \([0-9]*\) tests\?\..*/\1/p' "$LOGS/tests.log" | tail -1)"
  failed="$(sed -n 's/^\[  FAILED  \] \([0-9]*\) tests\?, listed below.*/\1/p' "$LOGS/tests.log" | tail -1)"
  skipped="$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) tests\?, listed below.*/\1/p' "$LOGS/tests.log" | tail -1)"
  local took=$((SECONDS - start))
  if ((rc == 124 || rc == 137)); then
    row "device tests ($filter)" "TIMED OUT after ${t} s (log: tests.log)"
    RC=1
  elif [[ "${ran:-0}" == 0 ]]; then
    ((rc == 0)) || tail -5 "$LOGS/tests.log"
    row "device tests ($filter)" "no test matched$( ((rc)) && echo ", exit $rc")"
    ((rc == 0)) || RC=1
  elif ((rc)); then
    row "device tests ($filter)" "${passed:-0} passed, ${failed:-?} FAILED, ${skipped:-0} skipped of $ran (${took} s; log: tests.log)"
    RC=1
  else
    row "device tests ($filter)" "$ran passed$([[ -n "$skipped" ]] && echo ", $skipped of them skipped") (${took} s)"
  fi
}

make_data() {
  local xmodal="$1" libpath="$2" out="$3" fm="$UNPACK/fashion-mnist" t
  echo "== data: xmodal data scenes --out $out --train 2000 --val 200 --test 200"
  [[ -d "$fm" ]] || fm="/usr/share/datasets/fashion-mnist"
  rm -rf "$out"
  t="$(step_timeout 60)"
  if [[ ! -f "$fm/train-images-idx3-ubyte.gz" ]]; then
    echo "data: no Fashion-MNIST in the bundle or $fm"
  elif ((t > 0)) && timeout -k 5 "$t" env LD_LIBRARY_PATH="$libpath" "$xmodal" data scenes \
    --out "$out" --train 2000 --val 200 --test 200 --fashion-mnist "$fm" >/tmp/xmodal-data.log 2>&1; then
    return 0
  else
    tail -5 /tmp/xmodal-data.log 2>/dev/null || true
  fi
  row "data set" "FAILED or skipped: the training rows below are skipped"
  RC=1
}

train_rate() {
  local xmodal="$1" libpath="$2" scenes="$3" p="$4" steps="${STEPS:-300}" t rc=0
  local run="/tmp/xmodal-run-$p" label="quickstart training, $p"
  echo "== $label: $steps steps on cuda"
  if [[ ! -f "$scenes/v2_mscoco_train_annotations.json" ]]; then
    row "$label" "skipped (no data set)"
    return
  fi
  t="$(step_timeout 90)"
  ((t > 0)) || { row "$label" "skipped (time budget)"; return; }
  rm -rf "$run"
  # shellcheck disable=SC2086
  timeout -k 10 "$t" env LD_LIBRARY_PATH="$libpath" "$xmodal" train configs/quickstart.yaml \
    --run-dir "$run" --set data.root="$scenes" --set model.vision.init_from= \
    --set run.device=cuda --set train.precision="$p" --set train.max_steps="$steps" \
    --set train.eval_every="$steps" --set train.checkpoint_every="$steps" \
    --set train.log_every="${LOG_EVERY:-50}" ${TRAIN_SET:-} >"$LOGS/train-$p.log" 2>&1 || rc=$?
  grep -E '\[train\] (step|done)|error|Error' "$LOGS/train-$p.log" | tail -10 || true
  local rate="" wait="" records=0 loss=""
  if [[ -f "$run/metrics.jsonl" ]]; then
    read -r rate wait records loss < <("$PY" "$HELPER" rate "$run/metrics.jsonl") || true
  fi
  if ((rc)); then
    local reading=""
    ((records >= 2)) && reading=", $rate samples/s before it stopped"
    row "$label" "FAILED (exit $rc$( ((rc == 124 || rc == 137)) && echo ": timed out after $t s")$reading; log: train-$p.log)"
    RC=1
    return
  fi
  local overall
  overall="$(sed -n 's/.*\[train\] done: \([0-9]* steps in [0-9ms]*\) (\([0-9.]* samples\/s\).*/\1, \2/p' \
    "$LOGS/train-$p.log" | tail -1)"
  echo "$label: $rate samples/s (median of the ${LOG_EVERY:-50}-step intervals after the first; data wait $wait%)"
  row "$label" "**$rate samples/s** (batch 64, median over steps $((${LOG_EVERY:-50} + 1))-$steps; data wait $wait%; final loss $loss; whole run with warm-up: ${overall:-?})"
}

nccl_check() {
  local xmodal="$1" libpath="$2" scenes="$3" dir=/tmp/xmodal-nccl t rc=0
  local label="NCCL, 2 processes = 1 on the combined batch"
  echo "== $label (the check of tests/train/distributed_test.cpp on cuda with dist.backend nccl)"
  if [[ ! -f "$scenes/v2_mscoco_train_annotations.json" ]]; then
    row "$label" "skipped (no data set)"
    return
  fi
  rm -rf "$dir"
  mkdir -p "$dir"
  # tiny_config() of distributed_test.cpp, on the GPU.
  cat >"$dir/tiny.yaml" <<EOF
task: vqa
run: {threads: 1, seed: 7, device: cuda}
data: {root: $scenes, image_size: 32, workers: 1}
model:
  vision: {patch_size: 16, hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  text: {hidden: 16, layers: 1, heads: 2, intermediate: 32}
  fusion: {hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  head: {hidden: 16}
train: {lr: 0.001, adam_eps: 1.0e-6, max_steps: 4, eval_every: 4, checkpoint_every: 4, log_every: 1}
dist: {backend: nccl, timeout_s: 60}
EOF
  t="$(step_timeout 60)"
  ((t > 0)) || { row "$label" "skipped (time budget)"; return; }
  timeout -k 10 "$t" env LD_LIBRARY_PATH="$libpath" "$xmodal" train "$dir/tiny.yaml" \
    --run-dir "$dir/two" --nproc 2 --set train.batch_size=4 >"$LOGS/nccl.log" 2>&1 || rc=$?
  t="$(step_timeout 60)"
  if ((rc == 0 && t > 0)); then
    timeout -k 10 "$t" env LD_LIBRARY_PATH="$libpath" "$xmodal" train "$dir/tiny.yaml" \
      --run-dir "$dir/one" --set train.batch_size=8 >>"$LOGS/nccl.log" 2>&1 || rc=$?
  fi
  if ((rc)) || [[ ! -f "$dir/one/last/model.safetensors" ]]; then
    tail -8 "$LOGS/nccl.log"
    row "$label" "FAILED (exit $rc; log: nccl.log)"
    RC=1
    return
  fi
  local diff name count steps tol="${NCCL_ATOL:-1e-3}"
  read -r diff name count < <("$PY" "$HELPER" compare "$dir/two/last/model.safetensors" "$dir/one/last/model.safetensors") || true
  steps="$("$PY" -c 'import json, sys; a, b = (json.load(open(p)) for p in sys.argv[1:]); print(a.get("step"), a.get("samples_seen") == b.get("samples_seen"))' \
    "$dir/two/last/state.json" "$dir/one/last/state.json" 2>/dev/null || echo "? ?")"
  echo "NCCL: max abs weight difference $diff ($name, $count tensors); step, same samples seen: $steps"
  if awk -v d="$diff" -v t="$tol" 'BEGIN { exit !(d == d + 0 && d <= t) }' && [[ "$steps" == "4 True" ]]; then
    row "$label" "ok: max abs weight difference $diff after 4 steps (tolerance $tol)"
  else
    row "$label" "FAILED: max abs weight difference $diff ($name) > $tol, or steps/samples differ ($steps)"
    RC=1
  fi
}

case "${1:-}" in
  --dry-run) dry_run ;;
  "")
    mkdir -p "$LOGS"
    device_run 2>&1 | tee "$LOGS/device-check.log"
    ;;
  -h | --help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//' ;;
  *) fail "unknown argument '$1' (--dry-run here, none on the GPU machine, --help)" ;;
esac
