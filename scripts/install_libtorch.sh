#!/usr/bin/env bash
# Installs the pinned LibTorch (scripts/libtorch.lock) into the xmodal cache, where CMake finds it
# with no flag (cmake/XmodalTorch.cmake):
#   ${XMODAL_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/xmodal}/libtorch-VERSION/{include,lib,share}
# from the PyPI `torch` wheel (its C++ part only: no Python is involved at build or run time) and
# the CUDA runtime wheels whose libcudart.so.13 and libcupti.so.13 its libtorch_cpu.so loads even
# on a machine without a GPU. Every download is checked against its size and sha256 before use;
# the tree is unpacked into a temporary folder and renamed into place only when complete, so a
# failed or partial run leaves no half-installed LibTorch. Wheels stay in the cache (downloads/):
# a second run, or a new clone, unpacks without downloading (~10 s).
#   scripts/install_libtorch.sh          # prints the installed folder on its last line
#   scripts/install_libtorch.sh --cuda   # also what the CUDA build links (scripts/build_cuda.sh)
set -euo pipefail
CUDA_EXTRAS=0
[[ "${1:-}" == "--cuda" ]] && CUDA_EXTRAS=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
# shellcheck source=libtorch.lock
source "$ROOT/scripts/libtorch.lock"
DOWNLOAD_TAG=libtorch
# shellcheck source=lib/download.sh
source "$ROOT/scripts/lib/download.sh"
DEST="$CACHE/libtorch-$XMODAL_LIBTORCH_VERSION"
STAMP="$XMODAL_LIBTORCH_SHA256 $XMODAL_CUDART_SHA256 $XMODAL_CUPTI_SHA256"

fail() {
  echo "[libtorch] error: $*" >&2
  exit 1
}

CUDA_STAMP="$XMODAL_CUSPARSELT_SHA256 $XMODAL_NVSHMEM_SHA256 $XMODAL_CUFILE_SHA256"
base_present() { [[ -f "$DEST/.complete" && "$(cat "$DEST/.complete")" == "$STAMP" ]]; }
cuda_present() { [[ -f "$DEST/.complete-cuda" && "$(cat "$DEST/.complete-cuda")" == "$CUDA_STAMP" ]]; }
if base_present && { ((!CUDA_EXTRAS)) || cuda_present; }; then
  echo "[libtorch] LibTorch $XMODAL_LIBTORCH_VERSION present" >&2
  echo "$DEST"
  exit 0
fi
for tool in curl unzip sha256sum; do
  command -v "$tool" >/dev/null || fail "'$tool' is missing (scripts/setup.sh installs it)"
done

if ! base_present; then
  wheel="$(fetch "$XMODAL_LIBTORCH_URL" "$XMODAL_LIBTORCH_SHA256" "$XMODAL_LIBTORCH_BYTES")"
  cudart="$(fetch "$XMODAL_CUDART_URL" "$XMODAL_CUDART_SHA256" "$XMODAL_CUDART_BYTES")"
  cupti="$(fetch "$XMODAL_CUPTI_URL" "$XMODAL_CUPTI_SHA256" "$XMODAL_CUPTI_BYTES")"

  new_tmp "$DEST.tmp-$$"
  echo "[libtorch] unpacking LibTorch $XMODAL_LIBTORCH_VERSION into $DEST" >&2
  # libtorch_python is the Python binding: not needed by a C++ program.
  unzip -q "$wheel" 'torch/include/*' 'torch/lib/*' 'torch/share/*' -x 'torch/lib/libtorch_python.so' \
    -d "$TMP" || fail "unpacking $wheel failed (disk full?); nothing was installed"
  unzip -q -j "$cudart" 'nvidia/cu13/lib/libcudart.so.13' -d "$TMP/torch/lib" ||
    fail "unpacking $cudart failed; nothing was installed"
  unzip -q -j "$cupti" 'nvidia/cu13/lib/libcupti.so.13' -d "$TMP/torch/lib" ||
    fail "unpacking $cupti failed; nothing was installed"
  mv "$TMP/torch/include" "$TMP/torch/lib" "$TMP/torch/share" "$TMP/"
  rmdir "$TMP/torch" 2>/dev/null || true
  # The wheel's include/ carries fmt 12's headers, which would shadow the fmt that spdlog and
  # xmodal are built with (Debian's libfmt-dev) for every file that includes LibTorch: kept aside.
  [[ -d "$TMP/include/fmt" ]] && mv "$TMP/include/fmt" "$TMP/fmt-headers-of-libtorch"
  for f in lib/libtorch_cpu.so lib/libc10.so include/torch/csrc/api/include/torch/torch.h share/cmake/Torch/TorchConfig.cmake; do
    [[ -e "$TMP/$f" ]] || fail "$wheel holds no torch/$f; nothing was installed"
  done
  echo "$XMODAL_LIBTORCH_VERSION" >"$TMP/VERSION"
  echo "$STAMP" >"$TMP/.complete"
  rm -rf "$DEST"
  mv "$TMP" "$DEST"
  trap - EXIT
  echo "[libtorch] LibTorch $XMODAL_LIBTORCH_VERSION installed" >&2
fi

if ((CUDA_EXTRAS)) && ! cuda_present; then
  cusparselt="$(fetch "$XMODAL_CUSPARSELT_URL" "$XMODAL_CUSPARSELT_SHA256" "$XMODAL_CUSPARSELT_BYTES")"
  nvshmem="$(fetch "$XMODAL_NVSHMEM_URL" "$XMODAL_NVSHMEM_SHA256" "$XMODAL_NVSHMEM_BYTES")"
  cufile="$(fetch "$XMODAL_CUFILE_URL" "$XMODAL_CUFILE_SHA256" "$XMODAL_CUFILE_BYTES")"
  new_tmp "$DEST/.tmp-cuda-$$"
  unzip -q -j "$cusparselt" 'nvidia/cusparselt/lib/libcusparseLt.so.0' -d "$TMP" &&
    unzip -q -j "$nvshmem" 'nvidia/nvshmem/lib/libnvshmem_host.so.3' -d "$TMP" &&
    unzip -q -j "$cufile" 'nvidia/cu13/lib/libcufile.so.0' -d "$TMP" ||
    fail "unpacking the CUDA libraries failed (disk full?); the CUDA part was not installed"
  rm -f "$DEST/.complete-cuda"
  mv "$TMP"/* "$DEST/lib/"
  echo "$CUDA_STAMP" >"$DEST/.complete-cuda"
  rm -rf "$TMP"
  trap - EXIT
  echo "[libtorch] the CUDA build's extra libraries installed (cuSPARSELt, NVSHMEM, cuFile)" >&2
fi
echo "$DEST"
