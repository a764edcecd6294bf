#!/usr/bin/python3
"""The measuring half of scripts/bench/compress.sh: every model of the table in one run.

For each (name, checkpoint) given as NAME=CHECKPOINT:
  accuracy   `xmodal eval --split test`: VQA overall and per answer type (metrics.json)
  size       parameters (tensor elements of model.safetensors; an int8 layer's scales not
             counted) and the bytes of model.safetensors
  speed      xmodal_bench_model --checkpoint C --mode infer: samples/s at batch 32 and the
             median batch-1 latency, in ROUNDS rounds that alternate the models (best of)
  predict    `xmodal predict` on one scene, process start to JSON: median of 5 wall times, and
             the largest peak RSS of those processes (wait4)
Prints a Markdown table, the int8 / fp32 ratios and the share of the teacher-student gap the
distilled student recovers, then the raw JSON lines.

    compress.py --xmodal BIN --bench BIN --image PNG --text T [--rounds 2] [--seconds 8]
                NAME=CKPT ...   (names: teacher, teacher int8, student, student distilled, ...)
"""
import argparse
import json
import os
import statistics
import struct
import subprocess
import sys
import tempfile
import time


def safetensors_counts(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))
    params = 0
    for name, info in header.items():
        if name == "__metadata__" or name.endswith(".weight_scale"):
            continue
        count = 1
        for d in info["shape"]:
            count *= d
        params += count
    return params, os.path.getsize(path)


def evaluate(xmodal, checkpoint, out_dir):
    subprocess.run([xmodal, "--log-level", "warn", "eval", "--checkpoint", checkpoint, "--split",
                    "test", "--out", out_dir], check=True, stdout=subprocess.DEVNULL)
    with open(os.path.join(out_dir, "metrics.json")) as f:
        return json.load(f)


def bench(binary, checkpoint, seconds):
    out = subprocess.run([binary, "--checkpoint", checkpoint, "--mode", "infer", "--batch", "32",
                          "--seconds", str(seconds), "--threads", "0"], check=True,
                         capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def predict_once(xmodal, checkpoint, image, text):
    start = time.monotonic()
    proc = subprocess.Popen([xmodal, "--log-level", "warn", "predict", "--checkpoint", checkpoint,
                             "--image", image, "--text", text], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise RuntimeError(f"predict on {checkpoint} failed ({status})")
    return time.monotonic() - start, usage.ru_maxrss / 1024.0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--xmodal", required=True)
    p.add_argument("--bench", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--text", default="how many t-shirts are there?")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--seconds", type=float, default=8)
    p.add_argument("models", nargs="+", help="NAME=CHECKPOINT")
    a = p.parse_args()
    models = [m.split("=", 1) for m in a.models]
    work = tempfile.mkdtemp(prefix="compress.")
    rows = {name: {"name": name, "checkpoint": ckpt} for name, ckpt in models}

    for name, ckpt in models:
        r = rows[name]
        m = evaluate(a.xmodal, ckpt, os.path.join(work, name.replace(" ", "_")))
        r.update({k: 100 * v for k, v in m["metrics"].items() if k.startswith("accuracy")})
        r["quantization"] = m.get("quantization", "none")
        target = os.path.realpath(ckpt)
        if not os.path.exists(os.path.join(target, "model.safetensors")):
            target = os.path.realpath(os.path.join(ckpt, "best"))
        r["params"], r["bytes"] = safetensors_counts(os.path.join(target, "model.safetensors"))
        print(f"[compress] {name}: accuracy {r['accuracy']:.2f}", file=sys.stderr)

    for round_ in range(a.rounds):  # alternating: the machine's drift hits every model alike
        for name, ckpt in models:
            r = rows[name]
            b = bench(a.bench, ckpt, a.seconds)
            r["sps"] = max(r.get("sps", 0), b["infer_sps"])
            r["latency_ms"] = min(r.get("latency_ms", 1e9), b["latency_ms"])
            r.setdefault("bench", []).append(b)
        print(f"[compress] speed round {round_ + 1}/{a.rounds} done", file=sys.stderr)

    for name, ckpt in models:
        runs = [predict_once(a.xmodal, ckpt, a.image, a.text) for _ in range(5)]
        rows[name]["cold_s"] = statistics.median(t for t, _ in runs)
        rows[name]["rss_mb"] = max(m for _, m in runs)

    print("| model | VQA acc. % | yes/no | number | other | parameters | model.safetensors MB "
          "| samples/s (batch 32) | batch-1 latency ms | predict cold start s | "
          "predict peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for name, _ in models:
        r = rows[name]
        print(f"| {name} | {r['accuracy']:.2f} | {r.get('accuracy_yes_no', 0):.2f} | "
              f"{r.get('accuracy_number', 0):.2f} | {r.get('accuracy_other', 0):.2f} | "
              f"{r['params'] / 1e6:.2f}M | {r['bytes'] / 1e6:.2f} | {r['sps']:.0f} | "
              f"{r['latency_ms']:.2f} | {r['cold_s']:.2f} | {r['rss_mb']:.0f} |")

    def pair(fp32, int8):
        if fp32 in rows and int8 in rows:
            f, q = rows[fp32], rows[int8]
            print(f"{int8} vs {fp32}: throughput {q['sps'] / f['sps']:.2f}x (target >= 1.8x), "
                  f"accuracy {q['accuracy'] - f['accuracy']:+.2f} points (target >= -0.5), "
                  f"model file {q['bytes'] / f['bytes']:.2f}x, batch-1 latency "
                  f"{q['latency_ms'] / f['latency_ms']:.2f}x")

    print()
    pair("teacher", "teacher int8")
    pair("student distilled", "student distilled int8")
    pair("student", "student int8")
    pair("wide", "wide int8")
    if all(k in rows for k in ("teacher", "student", "student distilled")):
        t, s, d = (rows[k]["accuracy"] for k in ("teacher", "student", "student distilled"))
        gap = t - s
        share = (d - s) / gap if gap > 0 else float("nan")
        print(f"distillation: teacher {t:.2f}, student {s:.2f}, distilled {d:.2f}: "
              f"{100 * share:.0f}% of the {gap:.2f}-point gap recovered (target >= 50%)")
    print()
    for name, _ in models:
        print(json.dumps(rows[name]))


if __name__ == "__main__":
    main()
