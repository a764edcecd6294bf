#!/usr/bin/python3
"""The driver of scripts/bench/serve.sh: four servers of the same model, one after the other on
127.0.0.1, each loaded by wrk at concurrency 1, 8, 32 and 64 (bounded: DURATION seconds per
point, a 30 s request timeout), then stopped:

  xmodal batched     xmodal serve --max-batch B --max-delay-ms D
  xmodal int8 batched  the same with --quantize int8 (docs/compression.md "int8 inference")
  xmodal unbatched   xmodal serve --max-batch 1
  pytorch+fastapi    serve_peer.py under uvicorn (the same model in PyTorch)

Prints a Markdown table (requests/s, items/s, latency p50/p90/p99, the average batch from
/metrics, non-2xx answers, the server's peak RSS) and the issue's targets at concurrency 32.

    serve_bench.py --xmodal BIN --checkpoint CKPT --arch JSON --image PNG [--duration S]
"""
import argparse
import base64
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
# the peer: PyTorch of xmodal's LibTorch version with FastAPI + uvicorn (scripts/bench/peer_venv.sh)
PEER_PYTHON = os.environ.get("PEER_PYTHON", "/usr/bin/python3")


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_healthy(port, proc, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit(f"server exited with {proc.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.1)
    sys.exit("server not healthy in time")


def scrape(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            text = r.read().decode()
    except OSError:
        return None
    get = lambda name: float(re.search(rf"^{name} (\S+)$", text, re.M).group(1))  # noqa: E731
    return get("xmodal_inferences_total"), get("xmodal_executions_total")


def peak_rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024.0
    return float("nan")


def to_ms(text):
    m = re.match(r"([\d.]+)(us|ms|s|m)$", text)
    v, unit = float(m.group(1)), m.group(2)
    return v * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


def wrk(port, concurrency, duration, lua):
    out = subprocess.run(
        ["wrk", "-t", str(min(2, concurrency)), "-c", str(concurrency), "-d", f"{duration}s",
         "--timeout", "30s", "--latency", "-s", lua, f"http://127.0.0.1:{port}/v1/predict"],
        capture_output=True, text=True, timeout=duration + 60).stdout
    pct = dict(re.findall(r"^\s+(50|75|90|99)%\s+(\S+)\s*$", out, re.M))
    if "99" not in pct:
        sys.exit(f"wrk gave no latency distribution:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    total = int(re.search(r"(\d+) requests in", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    return {"rps": rps, "requests": total, "p50": to_ms(pct["50"]), "p90": to_ms(pct["90"]),
            "p99": to_ms(pct["99"]), "non2xx": int(bad.group(1)) if bad else 0,
            "socket_errors": sum(map(int, errors.groups())) if errors else 0}


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--xmodal", required=True)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--arch", required=True)
    p.add_argument("--image", required=True)
    p.add_argument("--text", default="how many shirts are there?")
    p.add_argument("--duration", type=int, default=10)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--max-batch", type=int, default=16)
    p.add_argument("--max-delay-ms", type=float, default=5)
    p.add_argument("--concurrency", default="1,8,32,64")
    a = p.parse_args()
    levels = [int(c) for c in a.concurrency.split(",")]

    work = tempfile.mkdtemp(prefix="serve_bench.")
    body = os.path.join(work, "body.json")
    with open(a.image, "rb") as f:
        json.dump({"image": base64.b64encode(f.read()).decode(), "text": a.text}, open(body, "w"))
    lua = os.path.join(work, "post.lua")
    with open(lua, "w") as f:
        f.write('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                f'local f = io.open("{body}", "rb")\nwrk.body = f:read("*a")\nf:close()\n')

    xmodal_args = [a.xmodal, "--log-level", "warn", "--threads", str(a.threads), "serve",
                   "--checkpoint", a.checkpoint, "--port", "0", "--http-threads", "128",
                   "--queue", "1024"]
    servers = [
        ("xmodal batched", xmodal_args + ["--max-batch", str(a.max_batch), "--max-delay-ms",
                                          str(a.max_delay_ms)]),
        ("xmodal int8 batched", xmodal_args + ["--quantize", "int8", "--max-batch",
                                               str(a.max_batch), "--max-delay-ms",
                                               str(a.max_delay_ms)]),
        ("xmodal unbatched", xmodal_args + ["--max-batch", "1", "--max-delay-ms", "0"]),
        ("pytorch+fastapi", None),
    ]
    rows = []
    for name, args in servers:
        if args is None:
            port = free_port()
            proc = subprocess.Popen([PEER_PYTHON, os.path.join(HERE, "serve_peer.py"),
                                     "--arch", a.arch, "--port", str(port), "--threads",
                                     str(a.threads)], stdout=subprocess.DEVNULL)
        else:
            proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
            port = int(re.search(r":(\d+)\s*$", proc.stdout.readline()).group(1))
        wait_healthy(port, proc)
        wrk(port, 8, 2, lua)  # warm-up
        for c in levels:
            before = scrape(port) if args else None
            r = wrk(port, c, a.duration, lua)
            after = scrape(port) if args else None
            r["batch"] = ((after[0] - before[0]) / max(1.0, after[1] - before[1])
                          if before and after else 1.0)
            r.update(server=name, concurrency=c)
            rows.append(r)
            print(f"[bench] {name} c={c}: {r['rps']:.1f} req/s, p50 {r['p50']:.1f} ms, "
                  f"p99 {r['p99']:.1f} ms, batch {r['batch']:.1f}, non-2xx {r['non2xx']}",
                  flush=True)
        rss = peak_rss_mb(proc.pid)
        for r in rows:
            if r["server"] == name:
                r["rss"] = rss
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    print("\n| server | concurrency | requests/s | items/s | p50 ms | p90 ms | p99 ms | "
          "avg batch | non-2xx | peak RSS MiB |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['server']} | {r['concurrency']} | {r['rps']:.1f} | {r['rps']:.1f} | "
              f"{r['p50']:.1f} | {r['p90']:.1f} | {r['p99']:.1f} | {r['batch']:.1f} | "
              f"{r['non2xx'] + r['socket_errors']} | {r['rss']:.0f} |")
    at = {(r["server"], r["concurrency"]): r for r in rows}
    if 32 in levels and 1 in levels:
        b, u, peer = (at[("xmodal batched", 32)], at[("xmodal unbatched", 32)],
                      at[("pytorch+fastapi", 32)])
        p99_limit = 2 * at[("xmodal unbatched", 1)]["p99"] + a.max_delay_ms
        print(f"\nconcurrency 32: batched / unbatched throughput {b['rps'] / u['rps']:.2f}x "
              f"(target >= 3x); batched / pytorch+fastapi {b['rps'] / peer['rps']:.2f}x "
              f"(target >= 4x, issue 45); batched p99 {b['p99']:.1f} ms vs 2 x unbatched p99 at "
              f"concurrency 1 + max-delay = {p99_limit:.1f} ms "
              f"({'met' if b['p99'] <= p99_limit else 'missed'}); peak RSS xmodal "
              f"{b['rss']:.0f} MiB vs pytorch+fastapi {peer['rss']:.0f} MiB")


if __name__ == "__main__":
    main()
