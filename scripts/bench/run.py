#!/usr/bin/env python3
"""xmodal vs the same model in PyTorch (Python), measured side by side in one run; prints a
markdown table with ratios. Called by scripts/bench/run.sh (which builds and installs first).

Every figure is measured here; nothing is a constant. xmodal and the PyTorch peers alternate
ROUNDS times and each keeps its best (the machine's speed drifts by 2-3x within minutes, so
the best of alternating runs is the fairest single figure). The peer is the PyPI torch of the
same version as xmodal's LibTorch (scripts/bench/peer_venv.sh makes its venv), run three ways
per round: eager as installed (nn.MultiheadAttention takes scaled_dot_product_attention),
eager "tuned" with xmodal's malloc thresholds (MALLOC_*_ variables), and torch.compile'd
(inductor, with the same thresholds; its compilation is not timed). Targets are judged against
the fastest. The wheel's matrix products are its own (MKL, oneDNN); xmodal's go to the
OpenBLAS kernel it checks (`xmodal info`).

FLOPs (multiply-add = 2) per sample, forward, from the architecture; backward = 2x forward:
  conv 3x3 stride 2, c_in -> c_out, output h x w:  2 * 9 * c_in * c_out * h * w
  linear d_in -> d_out over n tokens:              2 * n * d_in * d_out
  transformer layer, n tokens, width d, MLP m:     n * (8 d^2 + 4 d m) + 4 n^2 d
       (q, k, v, out projections 4 * 2 n d^2; MLP 2 * 2 n d m; q k^T and p v 2 * 2 n^2 d)
LayerNorm, GELU, softmax, embeddings and the optimizer are not counted (elementwise, small).
"""
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("BUILD_DIR", os.path.join(ROOT, "build"))
PY = os.environ.get("PEER_PYTHON") or sys.exit("run.py: PEER_PYTHON (scripts/bench/peer_venv.sh) is not set")
PEER = os.path.join(ROOT, "scripts", "bench", "model_bench.py")
BENCH = os.path.join(BUILD, "xmodal_bench_model")
XMODAL = os.path.join(BUILD, "xmodal")
OPENMP_BLAS = "/usr/lib/x86_64-linux-gnu/openblas-openmp"
CONFIG = os.environ.get("CONFIG", "configs/quickstart.yaml")
ROUNDS = int(os.environ.get("ROUNDS", "2"))
SECONDS = os.environ.get("SECONDS_PER_RUN", "10")
EPOCH_STEPS = int(os.environ.get("EPOCH_STEPS", "150"))  # 0 = a whole epoch
THREADS = os.cpu_count()


def log(msg):
    print(msg, file=sys.stderr, flush=True)


def run(cmd, env=None):
    """Runs cmd in the repository; returns (stdout, wall seconds). Fails loudly."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            cwd=ROOT, env={**os.environ, **(env or {})})
    out, err = proc.communicate()
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"failed ({proc.returncode}): {' '.join(cmd)}\n{err[-3000:]}")
    return out, wall


def json_line(out):
    return json.loads([l for l in out.splitlines() if l.startswith("{")][-1])


# glibc settings equal to xmodal's configure_allocator() (core/runtime.cpp)
MALLOC_ENV = {"MALLOC_MMAP_THRESHOLD_": str(32 << 20), "MALLOC_TRIM_THRESHOLD_": str(1 << 30),
              "MALLOC_TOP_PAD_": str(64 << 20)}


def machine():
    """The CPU, BLAS, kernel table and product routing xmodal runs on (`xmodal info`)."""
    out, _ = run([XMODAL, "info"])
    facts = {}
    for line in out.splitlines():
        key, _, value = line.partition(": ")
        facts[key] = value
    kernel = facts.get("BLAS kernel", "").split(" ")[0]
    return facts, kernel


MACHINE, KERNEL = machine()


PEERS = ["pytorch", "pytorch-tuned", "pytorch-compiled"]


def peers():
    """(label, environment, extra arguments) of each PyTorch peer (module docstring)."""
    yield "pytorch", {}, []
    yield "pytorch-tuned", dict(MALLOC_ENV), []
    yield "pytorch-compiled", dict(MALLOC_ENV), ["--compile"]


def flops_per_sample(a):
    """Forward FLOPs of one sample (module docstring)."""
    def layer(n, d, m):
        return n * (8 * d * d + 4 * d * m) + 4 * n * n * d

    total, size, c_in, width = 0, a["image"], 3, a["stem_width"]
    dv = a["vision_hidden"]
    grid = a["image"] // a["patch"]
    if a["stem"] == "conv":
        s = 1
        while s < a["patch"]:
            size //= 2
            c_out = min(width, dv)
            total += 2 * 9 * c_in * c_out * size * size
            c_in, width, s = c_out, width * 2, s * 2
        total += 2 * c_in * dv * grid * grid  # the 1x1 conv to the hidden width
    else:
        total += 2 * 3 * a["patch"] ** 2 * dv * grid * grid
    n_image = 1 + grid * grid
    total += a["vision_layers"] * layer(n_image, dv, a["vision_mlp"])
    n_text, dt, d = a["text_len"], a["text_hidden"], a["fusion_hidden"]
    total += a["text_layers"] * layer(n_text, dt, a["text_mlp"])
    total += 2 * n_text * dt * d + 2 * n_image * dv * d  # projections into the fusion
    total += a["fusion_layers"] * layer(1 + n_text + n_image, d, a["fusion_mlp"])
    h = a["head_hidden"]
    total += 2 * d * d + 2 * d * h + 2 * h * a["classes"]  # pooler + VQA head
    if a["aux_counting"]:
        total += 2 * dv * h + 2 * h * a["aux"] * (a["max_count"] + 2)
    if a["aux_dense"]:
        total += 2 * grid * grid * dv * a["aux"]
    return total


def best(rows, impl, key):
    values = [r[key] for r in rows if r["impl"] == impl and key in r]
    return max(values) if values else float("nan")


def lowest(rows, impl, key):
    values = [r[key] for r in rows if r["impl"] == impl and key in r]
    return min(values) if values else float("nan")


def peer(arch_json, mode, label, env, extra, batch=None):
    cmd = [PY, PEER, "--arch", arch_json, "--mode", mode, "--label", label,
           "--threads", str(THREADS), "--seconds", "3" if mode == "matmul" else SECONDS]
    if batch:
        cmd += ["--batch", str(batch)]
    return json_line(run(cmd + extra, env)[0])


def main():
    arch = json_line(run([BENCH, "--config", CONFIG, "--mode", "arch"])[0])
    arch_json = json.dumps(arch)
    fwd_flops = flops_per_sample(arch)
    rows = []

    log("[bench] matmul ceilings (2048 x 2048, fp32 and bf16)")
    for _ in range(ROUNDS):
        rows.append(json_line(run([BENCH, "--config", CONFIG, "--mode", "matmul", "--seconds", "3"])[0]))
        rows.append(peer(arch_json, "matmul", "pytorch", {}, []))
        rows.append(peer(arch_json, "matmul", "pytorch-bf16", {}, ["--bf16"]))

    work = tempfile.mkdtemp(prefix="xmodal-bench-")
    run_dir = os.path.join(work, "run")
    ends = []  # the trainer's end events, one per round
    for mode, batch in (("train", 64), ("infer", 32)):
        for r in range(ROUNDS):
            log(f"[bench] {mode}, round {r + 1}/{ROUNDS}")
            # reference 1: without the oneDNN routing, fused attention, [CLS]-only layer
            for reference, precision in (("0", "fp32"), ("1", "fp32"), ("0", "bf16")):
                # the reference also leaves every product on the BLAS (core/gemm.h), as PyTorch
                out, _ = run([BENCH, "--config", CONFIG, "--mode", mode, "--batch", str(batch),
                              "--seconds", SECONDS, "--reference", reference,
                              "--precision", precision],
                             {"XMODAL_GEMM": "blas"} if reference == "1" else None)
                rows.append(json_line(out))
                if mode == "train" and reference == "0" and precision == "fp32":
                    # right after its pure compute: the real trainer on the scenes set
                    ends.append(train_end_to_end(run_dir))
                    ends[-1]["compute_sps"] = rows[-1]["train_sps"]
            if mode == "infer":  # int8 on the checkpoint the trainer just wrote, against fp32
                for quantize in ("none", "int8"):
                    out, _ = run([BENCH, "--checkpoint", os.path.join(run_dir, "last"), "--mode",
                                  "infer", "--batch", str(batch), "--seconds", SECONDS,
                                  "--quantize", quantize])
                    row = json_line(out)
                    row["impl"] = "xmodal-ckpt-" + quantize
                    rows.append(row)
            for label, env, extra in peers():
                rows.append(peer(arch_json, mode, label, env, extra, batch))
            rows.append(peer(arch_json, mode, "pytorch-bf16", dict(MALLOC_ENV), ["--bf16"], batch))

    # Cold start: process start -> JSON, on a fresh process each time (the median of 5).
    image = os.path.join(ROOT, "data", "fashion-scenes", "images", "test", "test_02000001.png")
    question = "how many shirts are there"
    weights = os.path.join(work, "peer.pt")
    run([PY, PEER, "--arch", arch_json, "--mode", "train", "--seconds", "1", "--weights", weights])
    cold = {"xmodal": [], "pytorch": []}
    rss = {"xmodal": 0.0, "pytorch": 0.0}
    for _ in range(5):
        log("[bench] cold start")
        out, wall = run([XMODAL, "predict", "--checkpoint", os.path.join(run_dir, "last"),
                            "--image", image, "--text", question])
        json.loads(out.splitlines()[-1])
        cold["xmodal"].append(wall)
        out, wall = run([PY, PEER, "--arch", arch_json, "--mode", "predict", "--weights",
                            weights, "--image-file", image, "--question", question])
        cold["pytorch"].append(wall)
        rss["pytorch"] = json_line(out)["peak_rss_mb"]
    rss["xmodal"] = peak_rss_of([XMODAL, "predict", "--checkpoint", os.path.join(run_dir, "last"),
                                 "--image", image, "--text", question])
    report(arch, fwd_flops, rows, ends, cold, rss)


def train_end_to_end(run_dir):
    """`xmodal train CONFIG` (loader + steps) for EPOCH_STEPS steps; returns its end event."""
    log(f"[bench] xmodal train {CONFIG} ({EPOCH_STEPS or 'one epoch of'} steps, loader included)")
    overrides = ["--set", "model.vision.init_from=", "--set", "train.eval_every=0",
                 "--set", "train.checkpoint_every=0", "--set", "train.log_every=10"]
    if EPOCH_STEPS:
        overrides += ["--set", f"train.max_steps={EPOCH_STEPS}"]
    shutil.rmtree(run_dir, ignore_errors=True)
    run([XMODAL, "train", CONFIG, "--run-dir", run_dir] + overrides)
    with open(os.path.join(run_dir, "metrics.jsonl")) as f:
        ends = [e for e in map(json.loads, f) if e.get("event") == "end"]
    if not ends:
        raise SystemExit(f"no 'end' event in {run_dir}/metrics.jsonl")
    return ends[-1]


def peak_rss_of(cmd):
    """Peak RSS (MiB) of one run of cmd, from wait4()."""
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=ROOT)
    _, status, usage = os.wait4(proc.pid, 0)
    if status != 0:
        raise SystemExit(f"failed: {' '.join(cmd)}")
    return usage.ru_maxrss / 1024.0


def report(arch, fwd_flops, rows, ends, cold, rss):
    x = {k: best(rows, "xmodal", k) for k in ("gflops", "bf16_gflops", "train_sps", "infer_sps")}
    x["latency_ms"] = lowest(rows, "xmodal", "latency_ms")
    p = {i: {k: best(rows, i, k) for k in ("gflops", "train_sps", "infer_sps")} for i in PEERS}
    for i in PEERS:
        p[i]["latency_ms"] = lowest(rows, i, "latency_ms")

    def top(key, better=max):
        return better(p[i][key] for i in PEERS)

    def rss_of(impl, mode):
        values = [r["peak_rss_mb"] for r in rows if r["impl"] == impl and r["mode"] == mode]
        return max(values) if values else float("nan")

    ceiling, bf16_ceiling = x["gflops"], x["bf16_gflops"]
    train_gflops = x["train_sps"] * 3 * fwd_flops / 1e9
    bf16_train = best(rows, "xmodal-bf16", "train_sps")
    bf16_gflops = bf16_train * 3 * fwd_flops / 1e9
    # loader cost per round: the trainer against the pure compute measured just before it
    overheads = [1 - e["samples_per_s"] / e["compute_sps"] for e in ends]
    overhead = statistics.mean(overheads)
    wait = statistics.mean(e["data_wait_s"] / e["train_s"] for e in ends)
    e2e_sps = statistics.mean(e["samples_per_s"] for e in ends)
    compute_sps = statistics.mean(e["compute_sps"] for e in ends)
    done = ends[-1]
    epoch_samples = done["batches_per_epoch"] * 64
    x_cold, p_cold = statistics.median(cold["xmodal"]), statistics.median(cold["pytorch"])
    x_rss = rss_of("xmodal", "train")
    p_rss = min(rss_of(i, "train") for i in PEERS)

    print()
    print(f"Machine: {MACHINE.get('CPU', '?')}; {MACHINE.get('LibTorch', '?')}; BLAS: "
          f"{MACHINE.get('BLAS', '?')}; kernel: {MACHINE.get('BLAS kernel', '?')}; matrix products: "
          f"{MACHINE.get('matrix products', '?')}. Peer: {peer_version(rows)}. "
          f"{time.strftime('%Y-%m-%d')}.")
    print()
    print(f"Model: {CONFIG}: {arch['image']} px images, {arch['stem']}-stem ViT "
          f"{arch['vision_layers']} x {arch['vision_hidden']}, fusion {arch['fusion_layers']} x "
          f"{arch['fusion_hidden']} over 1 + {arch['text_len']} + {1 + (arch['image'] // arch['patch']) ** 2} "
          f"tokens; {fwd_flops / 1e6:.1f} MFLOP per sample forward, 3x that per training sample. "
          f"{THREADS} threads. Best of {ROUNDS} alternating rounds.")
    print()
    print("| measure | xmodal | PyTorch eager | PyTorch eager, tuned | PyTorch compiled | "
          "xmodal vs best PyTorch | target | met |")
    print("|---|---|---|---|---|---|---|---|")

    def line(name, xs, peers, ratio, target, met):
        mark = "-" if met is None else ("yes" if met else "**no**")
        cells = " | ".join(peers) if isinstance(peers, list) else f"{peers} | - | -"
        print(f"| {name} | {xs} | {cells} | {ratio} | {target} | {mark} |")

    def each(key, scale=1.0, fmt="{:.0f}"):
        return [fmt.format(p[i][key] * scale) for i in PEERS]

    line("fp32 matmul ceiling, GFLOP/s (2048 x 2048)", f"{ceiling:.0f}",
         f"{p['pytorch']['gflops']:.0f}", "-", "-", None)
    line("bf16 matmul ceiling, GFLOP/s (2048 x 2048)", f"{bf16_ceiling:.0f}",
         f"{best(rows, 'pytorch-bf16', 'gflops'):.0f}", "-", "-", None)
    ratio = x["train_sps"] / top("train_sps")
    line("training, samples/s (batch 64, AdamW + clipping)", f"{x['train_sps']:.0f}",
         each("train_sps"), f"{ratio:.2f}x", ">= 1.25x", ratio >= 1.25)
    ref = best(rows, "xmodal-reference", "train_sps")
    line("training, xmodal without its kernels (ATen ops as in PyTorch), samples/s", f"{ref:.0f}",
         ["-"] * 3, f"{ref / top('train_sps'):.2f}x", "-", None)
    line("training, achieved GFLOP/s (share of the fp32 ceiling)",
         f"{train_gflops:.0f} ({100 * train_gflops / ceiling:.0f}%)",
         each("train_sps", 3 * fwd_flops / 1e9), "-", ">= 70%", train_gflops >= 0.7 * ceiling)
    peer_bf16 = best(rows, "pytorch-bf16", "train_sps")
    ratio = bf16_train / x["train_sps"]
    line("training bf16 (autocast), samples/s; vs xmodal fp32", f"{bf16_train:.0f}",
         f"{peer_bf16:.0f} (eager, tuned)", f"{ratio:.2f}x fp32 ({bf16_train / peer_bf16:.2f}x PyTorch bf16)",
         ">= 1.3x fp32", ratio >= 1.3)
    line("training bf16, achieved GFLOP/s (share of the bf16 ceiling)",
         f"{bf16_gflops:.0f} ({100 * bf16_gflops / bf16_ceiling:.0f}%)", "-", "-", ">= 70%",
         bf16_gflops >= 0.7 * bf16_ceiling)
    ratio = x["infer_sps"] / top("infer_sps")
    line("inference, samples/s (batch 32)", f"{x['infer_sps']:.0f}", each("infer_sps"),
         f"{ratio:.2f}x", ">= 1.1x", ratio >= 1.1)
    ref = best(rows, "xmodal-reference", "infer_sps")
    line("inference, xmodal without its kernels, samples/s", f"{ref:.0f}", ["-"] * 3,
         f"{ref / top('infer_sps'):.2f}x", "-", None)
    bf16_infer = best(rows, "xmodal-bf16", "infer_sps")
    line("inference bf16, samples/s (batch 32); vs xmodal fp32", f"{bf16_infer:.0f}",
         f"{best(rows, 'pytorch-bf16', 'infer_sps'):.0f} (eager, tuned)",
         f"{bf16_infer / x['infer_sps']:.2f}x fp32", "-", None)
    ckpt_fp32 = best(rows, "xmodal-ckpt-none", "infer_sps")
    ckpt_int8 = best(rows, "xmodal-ckpt-int8", "infer_sps")
    ratio = ckpt_int8 / ckpt_fp32
    line("inference int8 (--quantize int8), samples/s (batch 32); vs fp32 of the same checkpoint",
         f"{ckpt_int8:.0f} (fp32: {ckpt_fp32:.0f})", "-", f"{ratio:.2f}x fp32", ">= 1.6x",
         ratio >= 1.6)
    ratio = top("latency_ms", min) / x["latency_ms"]
    line("inference latency, batch 1, ms (median)", f"{x['latency_ms']:.2f}",
         each("latency_ms", fmt="{:.2f}"), f"{ratio:.2f}x faster", ">= 1.0x", ratio >= 1.0)
    line("epoch of the scenes set: loader + training, s (mean of rounds)",
         f"{epoch_samples / e2e_sps:.0f}", "-", f"pure compute: {epoch_samples / compute_sps:.0f} s",
         "-", None)
    # The loader's own CPU time (its threads' clocks) over the cores' time of the loop: what
    # loading takes from the compute, measured directly (the end-to-end difference below is a
    # cross-check whose round-to-round spread is larger than the effect).
    shares = [e["loader_cpu_share"] for e in ends]
    share = statistics.mean(shares)
    line("cost of data loading: loader CPU time / (cores x training time) (mean of rounds)",
         f"{100 * share:.1f}% (per round: {', '.join(f'{100 * o:.1f}%' for o in shares)}; "
         f"waiting for a batch: {100 * wait:.1f}%)", "-", "-", "< 3%", share < 0.03)
    line("cross-check: 1 - end-to-end / pure compute (mean of rounds)",
         f"{100 * overhead:.1f}% (per round: {', '.join(f'{100 * o:.1f}%' for o in overheads)})",
         "-", "-", "-", None)
    ratio = x_cold / p_cold
    line("predict cold start, s (process start to JSON, median of 5)", f"{x_cold:.2f}",
         f"{p_cold:.2f}", f"{ratio:.2f}x the time", "<= 1.0 s, <= 0.6x",
         x_cold <= 1.0 and ratio <= 0.6)
    line("training peak RSS, MiB", f"{x_rss:.0f}", [f"{rss_of(i, 'train'):.0f}" for i in PEERS],
         f"{x_rss / p_rss:.2f}x", "<= 1.0x", x_rss <= p_rss)
    line("predict peak RSS, MiB", f"{rss['xmodal']:.0f}", f"{rss['pytorch']:.0f}",
         f"{rss['xmodal'] / rss['pytorch']:.2f}x", "-", None)
    print()
    print(f"End to end: `xmodal train {CONFIG}` for {done['step']} steps per round, right after "
          f"the pure-compute run of the same round; an epoch is {done['batches_per_epoch']} "
          "batches of 64. int8: `xmodal_bench_model --checkpoint` on that run's checkpoint.")
    print()
    print("Every run (JSON lines):")
    for r in rows:
        print(f"    {json.dumps(r)}")
    for e in ends:
        print(f"    xmodal train end event: {json.dumps(e)}")
    print(f"    cold start, s: xmodal {[round(c, 3) for c in cold['xmodal']]}, "
          f"pytorch {[round(c, 3) for c in cold['pytorch']]}")


def peer_version(rows):
    versions = {r.get("torch") for r in rows if r["impl"].startswith("pytorch") and r.get("torch")}
    return "PyTorch " + ", ".join(sorted(versions)) if versions else "PyTorch"


if __name__ == "__main__":
    main()
