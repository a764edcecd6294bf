#!/usr/bin/env bash
# The main job end to end on a fresh Debian 12 machine: install, build, then run.
# (Training, evaluation and the data set land with issues 4-6; until then this stops after
# showing what the build runs on.)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
XMODAL="$BUILD_DIR/xmodal"

"$ROOT/scripts/setup.sh"
cd "$ROOT"

echo "== xmodal info"
"$XMODAL" info --bench

echo "== resolved quickstart config (configs/quickstart.yaml)"
"$XMODAL" train configs/quickstart.yaml --dump-config | head -n 12
echo "   ..."

echo "== next: data set, training and evaluation are not implemented yet (issues 4, 5, 6)"
