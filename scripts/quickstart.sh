#!/usr/bin/env bash
# The main job end to end on a fresh Debian 12 machine: install, build, then run.
# (Training and evaluation land with issues 5-6; until then this stops after building the
# data set.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
XMODAL="$BUILD_DIR/xmodal"

"$ROOT/scripts/setup.sh"
cd "$ROOT"

echo "== xmodal info"
"$XMODAL" info --bench

echo "== resolved quickstart config (configs/quickstart.yaml)"
"$XMODAL" train configs/quickstart.yaml --dump-config | sed -n 1,12p
echo "   ..."

echo "== model of the quickstart config"
"$XMODAL" info --config configs/quickstart.yaml | tail -n +6

if [[ ! -f data/fashion-scenes/v2_mscoco_test_annotations.json ]]; then
  echo "== building the Fashion-scenes data set (data/fashion-scenes)"
  "$XMODAL" data scenes --out data/fashion-scenes
else
  echo "== data/fashion-scenes already built"
fi

echo "== next: training and evaluation are not implemented yet (issues 5, 6)"
