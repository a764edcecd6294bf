#!/usr/bin/env bash
# Makes (once) the venv with the official COCO caption evaluation, pycocoevalcap 1.2 from PyPI,
# for scripts/make_caption_metric_fixtures.py, and prints its python. Needs java (Debian's
# default-jre-headless) for the official tokenizer. Never used by xmodal itself or its tests.
set -euo pipefail
VENV="${XMODAL_CAPTION_VENV:-$HOME/.cache/xmodal/capvenv}"
if [[ ! -x "$VENV/bin/python" ]] || ! "$VENV/bin/python" -c 'import pycocoevalcap' 2>/dev/null; then
  python3 -m venv "$VENV" >&2
  "$VENV/bin/pip" install -q pycocoevalcap==1.2 >&2
fi
command -v java >/dev/null || { echo "caption_reference_venv.sh: needs java (apt-get install default-jre-headless)" >&2; exit 1; }
echo "$VENV/bin/python"
