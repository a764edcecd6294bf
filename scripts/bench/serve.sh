#!/usr/bin/env bash
# `xmodal serve` against itself unbatched and against the same model in PyTorch behind FastAPI +
# uvicorn, side by side in one run (scripts/bench/serve_bench.py): throughput and latency at
# concurrency 1, 8, 32, 64 with wrk, the average batch, peak RSS. Traffic goes to 127.0.0.1
# only, DURATION seconds per point (~3 min in all at the default 10).
#   scripts/bench/serve.sh [CHECKPOINT]        (default: a 2-step quickstart-sized VQA model)
#   DURATION=20 MAX_BATCH=16 MAX_DELAY_MS=5 scripts/bench/serve.sh runs/quickstart/best
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD="${BUILD:-$ROOT/build}"
XMODAL="$BUILD/xmodal"
# the load generator (Debian) and the peer: PyTorch of xmodal's LibTorch version with FastAPI +
# uvicorn in the benchmarks' venv (scripts/bench/peer_venv.sh)
if ! command -v wrk >/dev/null; then
  EXTRA_PACKAGES="wrk" "$ROOT/scripts/setup.sh" --packages-only
fi
PEER_PYTHON="$("$ROOT/scripts/bench/peer_venv.sh")"
export PEER_PYTHON
W="$(mktemp -d)"
trap 'rm -rf "$W"' EXIT
"$XMODAL" --log-level warn data scenes --out "$W/scenes" --train 256 --val 32 --test 32 >/dev/null
CKPT="${1:-}"
if [[ -z "$CKPT" ]]; then
  # The quickstart's model (configs/quickstart.yaml) after 2 steps: the speed is the trained one's.
  "$XMODAL" --log-level warn train "$ROOT/configs/quickstart.yaml" --set "data.root=$W/scenes" \
    --set model.vision.init_from= --set train.max_steps=2 --set train.eval_every=2 \
    --set "run.dir=$W/run" >/dev/null
  CKPT="$W/run/best"
fi
CKPT_DIR="$(readlink -f "$CKPT")"
[[ -f "$CKPT_DIR/config.yaml" ]] || CKPT_DIR="$(readlink -f "$CKPT/best")"
ARCH="$("$BUILD/xmodal_bench_model" --mode arch --config "$CKPT_DIR/config.yaml" \
  --vocab "$(wc -l <"$CKPT_DIR/vocab.txt")" --classes "$(wc -l <"$CKPT_DIR/classes.txt")")"
"$XMODAL" info | head -2
/usr/bin/python3 "$ROOT/scripts/bench/serve_bench.py" --xmodal "$XMODAL" --checkpoint "$CKPT_DIR" \
  --arch "$ARCH" --image "$(ls "$W"/scenes/images/test/*.png | head -1)" \
  --duration "${DURATION:-10}" --max-batch "${MAX_BATCH:-16}" --max-delay-ms "${MAX_DELAY_MS:-5}"
