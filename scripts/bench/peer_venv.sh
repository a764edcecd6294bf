#!/usr/bin/env bash
# The PyTorch peer of the benchmarks: a venv with the PyPI torch of the same version as xmodal's
# LibTorch (scripts/libtorch.lock), its torchvision, and FastAPI + uvicorn for the serving peer,
# made once and reused. Prints the venv's
# python. Benchmarks only: nothing of xmodal runs in it.
#
#   PY=$(scripts/bench/peer_venv.sh)
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${XMODAL_CACHE_DIR:-$HOME/.cache/xmodal}"
TORCH_VERSION="2.11.0"        # = LibTorch of scripts/libtorch.lock
TORCHVISION_VERSION="0.26.0"  # the torchvision built against it
SERVE_PACKAGES=("fastapi==0.165.0" "uvicorn==0.55.0")  # the serving peer (serve_peer.py)
VENV="$CACHE/bench-venv-$TORCH_VERSION"

if ! grep -q "torch-$TORCH_VERSION-" "$ROOT/scripts/libtorch.lock"; then
  echo "peer_venv: scripts/libtorch.lock no longer pins torch $TORCH_VERSION; update $0" >&2
  exit 1
fi
if [[ ! -x "$VENV/bin/python" ]] ||
  ! "$VENV/bin/python" -c "import torch, torchvision, fastapi, uvicorn, sys; sys.exit(torch.__version__.split('+')[0] != '$TORCH_VERSION')" 2>/dev/null; then
  if ! python3 -c "import venv, ensurepip" 2>/dev/null; then
    SUDO=(); [[ $EUID -ne 0 ]] && SUDO=(sudo)
    "${SUDO[@]}" apt-get install -y -q python3-venv >/dev/null
  fi
  rm -rf "$VENV.tmp"
  python3 -m venv "$VENV.tmp"
  # the torch wheel install_libtorch.sh downloaded is reused (--find-links); the rest from PyPI
  "$VENV.tmp/bin/pip" install -q --disable-pip-version-check --find-links "$CACHE/downloads" \
    "torch==$TORCH_VERSION" "torchvision==$TORCHVISION_VERSION" numpy "${SERVE_PACKAGES[@]}" >&2
  rm -rf "$VENV"
  mv "$VENV.tmp" "$VENV"
fi
echo "$VENV/bin/python"
