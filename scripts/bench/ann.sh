#!/usr/bin/env bash
# The search backends of `xmodal search` on N random unit vectors of dimension D (default 1M x
# 256): exact (LibTorch matrix product), FAISS IVF-Flat (nprobe 8 / 32 / 128) and HNSW-Flat
# (efSearch 32 / 128 / 512): build time, index size, resident memory, query latency and
# recall@10 against the exact search, as a table. Random vectors are the hard case for an
# approximate index (no clusters to exploit): real embeddings reach a given recall sooner.
#   scripts/bench/ann.sh [--n 1000000 --dim 256 --queries 200 --nlist 1024 --hnsw-m 32 ...]
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
BUILD_DIR="${BUILD_DIR:-$ROOT/build}"
cmake -DXMODAL_BENCH=ON "$BUILD_DIR" >/dev/null && cmake --build "$BUILD_DIR" --target xmodal_bench_ann >/dev/null
out="$(mktemp)"
"$BUILD_DIR/xmodal_bench_ann" "$@" | tee "$out"
"$BUILD_DIR/xmodal" info 2>/dev/null | grep -i -m1 "cpu" || true
/usr/bin/python3 - "$out" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.startswith("{")]
print("| backend | setting | build s | index MiB | RSS MiB | query ms p50 | p95 | ms/query in a batch | recall@10 |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['backend']} | {r['setting']} | {r['build_s']:.1f} | {r['index_mb']:.0f} | {r['rss_mb']:.0f} | "
          f"{r['query_ms_p50']:.2f} | {r['query_ms_p95']:.2f} | {r['batch_ms_per_query']:.3f} | {r['recall_at_10']:.3f} |")
PY
