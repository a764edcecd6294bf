#!/usr/bin/python3
"""`xmodal serve` on the real binary and a real socket (127.0.0.1 only; ~1 min):

  health       503 or 200 while loading, 200 once ready
  predict      32 concurrent clients, each answer equal to `xmodal predict` for the same input
               (answers equal, probabilities within 1e-5); a list request; batches formed
  bad input    every hostile request of issue 25 item 4: status, a one-line JSON error, and the
               server healthy afterwards
  metrics      the counters count what was sent
  int8         a --quantize int8 server answers as `xmodal predict --quantize int8`
  retrieval    /v1/embed equals `xmodal embed`'s rows; /v1/search answers like `xmodal search`
  caption      /v1/caption under 8 concurrent clients answers as `xmodal predict` (the beam's
               captions equal, probabilities within 1e-5); refused on a vqa model
  SIGTERM      while requests are in flight: each one answered, exit 0
  hostile      issue 40: bodies over the limit (chunked, without a length, compressed), header
               bombs, 150 slow clients, Range, pipelining, oversized numbers, multipart, Expect,
               a connection cap, flags and key files refused at start, SIGHUP: statuses, time
               and peak memory (VmHWM) bounded, the server healthy after each

    tests/apps/serve_test.py BUILD_DIR
"""
import base64
import http.client
import zlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "build")
XMODAL = os.path.join(BUILD, "xmodal")
WORK = tempfile.mkdtemp(prefix="serve_test.")
FAILURES = []


def fail(message):
    FAILURES.append(message)
    print("FAIL:", message, flush=True)


def run(*args, **kw):
    return subprocess.run([XMODAL, "--log-level", "warn", *args], check=True,
                          capture_output=True, text=True, **kw)


class Served:
    """A server process on a free port; stop() sends SIGTERM and returns the exit code."""

    def __init__(self, *args):
        self.log = open(os.path.join(WORK, f"serve{time.monotonic_ns()}.log"), "w+")
        self.proc = subprocess.Popen([XMODAL, "serve", "--port", "0", *args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        line = self.proc.stdout.readline()
        m = re.search(r"listening on http://[^:]+:(\d+)", line)
        if not m:
            raise SystemExit(f"serve did not start: {line!r} {self.stderr()}")
        self.port = int(m.group(1))
        deadline = time.time() + 60
        statuses = set()
        while time.time() < deadline:
            status, body = self.request("GET", "/health")
            statuses.add(status)
            if status == 200:
                if body != {"status": "ok"}:
                    fail(f"/health body {body}")
                break
            if status != 503 or body.get("status") != "loading":
                fail(f"/health while loading: {status} {body}")
            time.sleep(0.05)
        else:
            raise SystemExit("serve: not ready within 60 s: " + self.stderr())

    def stderr(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()

    def request(self, method, path, body=None, headers=None, raw=False):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers=headers or {})
        response = conn.getresponse()
        payload = response.read()
        conn.close()
        if raw:
            return response.status, payload, dict(response.getheaders())
        try:
            return response.status, json.loads(payload)
        except ValueError:
            return response.status, payload.decode(errors="replace")

    def stop(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return "hung"


def b64(path):
    with open(path, "rb") as f:
        return base64.b64encode(f.read()).decode()


def check_error(server, name, status, expect, method, path, body, headers=None, contains=""):
    got, payload, hdrs = server.request(method, path, body, headers, raw=True)
    text = payload.decode(errors="replace")
    ok = got == status
    try:
        error = json.loads(text)["error"]
        ok = ok and isinstance(error, str) and "\n" not in error and re.search(expect, error)
    except (ValueError, KeyError, TypeError):
        ok = False
    if contains and contains not in hdrs:
        ok = False
    health, _ = server.request("GET", "/health")
    if not ok or health != 200:
        fail(f"{name}: got {got} {text.strip()[:300]!r} (expected {status} /{expect}/), "
             f"health {health}")
    else:
        print(f"ok   {name}: {got} {text.strip()[:120]}")


def vmhwm_mib(pid):
    """The process's peak resident memory (MiB)."""
    with open(f"/proc/{pid}/status") as f:
        return int(re.search(r"^VmHWM:\s+(\d+) kB", f.read(), re.M).group(1)) / 1024


def read_response(f):
    """One HTTP/1.1 response from a socket's file: (status, headers (lower-case), body)."""
    line = f.readline()
    if not line:
        return None, {}, b""
    status = int(line.split()[1])
    headers = {}
    while True:
        h = f.readline()
        if h in (b"\r\n", b"\n", b""):
            break
        k, v = h.decode().split(":", 1)
        headers[k.strip().lower()] = v.strip()
    body = f.read(int(headers.get("content-length", 0)))
    return status, headers, body


def send_and_read(server, head, chunks=(), timeout=10, half_close=False):
    """Sends `head`, then `chunks` from a thread (errors ignored: the server may stop reading);
    returns (status, headers, body, seconds to the answer)."""
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(timeout)

    def pump():
        try:
            s.sendall(head)
            for c in chunks:
                s.sendall(c)
            if half_close:
                s.shutdown(socket.SHUT_WR)
        except OSError:
            pass

    t = threading.Thread(target=pump, daemon=True)
    start = time.time()
    t.start()
    try:
        status, headers, body = read_response(s.makefile("rb"))
    except (OSError, ValueError, IndexError) as e:
        status, headers, body = f"{type(e).__name__}: {e}", {}, b""
    took = time.time() - start
    s.close()
    t.join(5)
    return status, headers, body, took


def check_hostile(server, name, status, head, chunks=(), within=5.0, max_growth_mib=100,
                  half_close=False, expect=""):
    """A hostile request: answered `status` within `within` s, VmHWM grown less than
    max_growth_mib, the server healthy after."""
    before = vmhwm_mib(server.proc.pid)
    got, _, body, took = send_and_read(server, head, chunks, half_close=half_close)
    growth = vmhwm_mib(server.proc.pid) - before
    health, _ = server.request("GET", "/health")
    text = body.decode(errors="replace").strip()
    problems = []
    if got != status:
        problems.append(f"status {got} (expected {status})")
    if took > within:
        problems.append(f"answered after {took:.1f} s (expected within {within} s)")
    if growth > max_growth_mib:
        problems.append(f"VmHWM grew {growth:.0f} MiB")
    if expect and not re.search(expect, text):
        problems.append(f"body {text[:200]!r} lacks /{expect}/")
    if health != 200:
        problems.append(f"health {health} after")
    if problems:
        fail(f"{name}: " + "; ".join(problems))
    else:
        print(f"ok   {name}: {got} in {took:.2f} s, VmHWM +{growth:.0f} MiB: {text[:90]}")


def close_enough(a, b, path="$"):
    """Predict objects equal, numbers within 1e-5."""
    if isinstance(a, dict) and isinstance(b, dict):
        if set(a) != set(b):
            return f"{path}: keys {sorted(a)} vs {sorted(b)}"
        for k in a:
            r = close_enough(a[k], b[k], f"{path}.{k}")
            if r:
                return r
        return None
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return f"{path}: {len(a)} vs {len(b)} items"
        for i, (x, y) in enumerate(zip(a, b)):
            r = close_enough(x, y, f"{path}[{i}]")
            if r:
                return r
        return None
    if isinstance(a, float) or isinstance(b, float):
        return None if abs(a - b) <= 1e-5 else f"{path}: {a} vs {b}"
    return None if a == b else f"{path}: {a!r} vs {b!r}"


def main():
    scenes = os.path.join(WORK, "scenes")
    run("data", "scenes", "--out", scenes, "--train", "64", "--val", "8", "--test", "16",
        "--canvas", "32", "--max-items", "3", "--item-size", "8:12", "--seed", "5")
    encoders = """  vision: {patch_size: 16, hidden: 16, layers: 1, heads: 2, mlp_dim: 32}
  text: {hidden: 16, layers: 1, heads: 2, intermediate: 32}
"""
    with open(os.path.join(WORK, "vqa.yaml"), "w") as f:
        f.write(f"""task: vqa
run: {{dir: {WORK}/vqa, threads: 2, seed: 3}}
data: {{root: {scenes}, image_size: 32, workers: 1}}
model:
{encoders}  fusion: {{hidden: 16, layers: 1, heads: 2, mlp_dim: 32}}
  head: {{hidden: 16}}
train: {{batch_size: 16, max_steps: 6, eval_every: 6, checkpoint_every: 6}}
""")
    with open(os.path.join(WORK, "rt.yaml"), "w") as f:
        f.write(f"""task: retrieval
run: {{dir: {WORK}/rt, threads: 2, seed: 3}}
data: {{root: {scenes}, image_size: 32, workers: 1, max_text_len: 48}}
model:
{encoders}  retrieval: {{embed_dim: 8}}
train: {{batch_size: 16, max_steps: 4, eval_every: 4, checkpoint_every: 4,
        early_stopping: {{metric: rsum, mode: max}}}}
""")
    run("train", os.path.join(WORK, "vqa.yaml"))
    run("train", os.path.join(WORK, "rt.yaml"))
    vqa, rt = os.path.join(WORK, "vqa", "last"), os.path.join(WORK, "rt", "last")

    # The inputs and what `xmodal predict` says about them.
    questions = json.load(open(os.path.join(scenes, "v2_OpenEnded_mscoco_test_questions.json")))
    images = sorted(os.listdir(os.path.join(scenes, "images", "test")))
    by_id = {int(re.search(r"(\d+)", n).group(1)): n for n in images}
    inputs = []
    for q in questions["questions"][:32]:
        name = by_id[q["image_id"]]
        inputs.append({"image": os.path.join(scenes, "images", "test", name), "text": q["question"]})
    with open(os.path.join(WORK, "inputs.jsonl"), "w") as f:
        for i in inputs:
            f.write(json.dumps(i) + "\n")
    # (`predict --input` adds the input's line number: not part of the answer)
    expected = [{k: v for k, v in json.loads(line).items() if k != "line"} for line in run(
        "predict", "--checkpoint", vqa, "--input", os.path.join(WORK, "inputs.jsonl"),
        "--top-k", "5").stdout.splitlines()]
    assert len(expected) == len(inputs), "predict --input"

    key = os.path.join(WORK, "key")
    with open(key, "w") as f:
        f.write("s3cret-key\n")
    auth = {"Authorization": "Bearer s3cret-key"}
    server = Served("--checkpoint", vqa, "--max-batch", "8", "--max-delay-ms", "20",
                    "--api-key-file", key, "--image-root", scenes, "--max-body-mb", "0.5",
                    "--max-items", "8", "--timeout-s", "2", "--http-threads", "48")

    # 32 concurrent clients, one item each (base64)
    answers = [None] * len(inputs)

    def client(i):
        answers[i] = server.request("POST", "/v1/predict",
                                    {"image": b64(inputs[i]["image"]), "text": inputs[i]["text"]},
                                    auth)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(inputs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for i, (status, body) in enumerate(answers):
        want = dict(expected[i])
        want.pop("image")  # a base64 image has no path to echo
        problem = f"status {status} {body}" if status != 200 else close_enough(body, want)
        if problem:
            fail(f"predict item {i}: {problem}")
    print(f"ok   32 concurrent predictions checked against xmodal predict")

    # a list request with image paths (inside --image-root): the same objects, paths echoed
    rel = [os.path.relpath(i["image"], scenes) for i in inputs[:8]]
    status, body = server.request("POST", "/v1/predict",
                                  [{"image_path": r, "text": i["text"]}
                                   for r, i in zip(rel, inputs[:8])], auth)
    if status != 200 or not isinstance(body, list) or len(body) != 8:
        fail(f"list request: {status} {body}")
    else:
        for i, got in enumerate(body):
            want = dict(expected[i])
            want["image"] = rel[i]
            problem = close_enough(got, want)
            if problem:
                fail(f"list item {i}: {problem}")
    # one bad item does not fail the others
    status, body = server.request("POST", "/v1/predict",
                                  [{"image": "!!!", "text": "x"},
                                   {"image": b64(inputs[0]["image"]), "text": inputs[0]["text"]}],
                                  auth)
    if status != 200 or "error" not in body[0] or close_enough(
            body[1], {k: v for k, v in expected[0].items() if k != "image"}):
        fail(f"per-item error: {status} {body}")

    # ---- hostile and faulty requests ----
    p = "/v1/predict"
    img = b64(inputs[0]["image"])
    check_error(server, "missing API key", 401, "API key is required", "POST", p,
                {"image": img, "text": "x"})
    check_error(server, "wrong API key", 401, "wrong API key", "POST", p,
                {"image": img, "text": "x"}, {"Authorization": "Bearer nope"})
    check_error(server, "metrics need the key", 401, "API key", "GET", "/metrics", None)
    check_error(server, "malformed JSON", 400, "not valid JSON", "POST", p, b'{"image": ', auth)
    check_error(server, "empty body", 400, "empty body", "POST", p, b"", auth)
    check_error(server, "deep nesting", 400, "nested deeper", "POST", p, b"[" * 100000, auth)
    check_error(server, "not an object", 400, "expected a JSON object", "POST", p, b"42", auth)
    check_error(server, "text of the wrong type", 400, r"body\.text: expected a string", "POST",
                p, {"image": img, "text": 5}, auth)
    check_error(server, "top_k of the wrong type", 400, r"top_k: expected an integer", "POST",
                p, {"image": img, "text": "x", "top_k": "5"}, auth)
    check_error(server, "missing image", 400, "missing field \"image\"", "POST", p,
                {"text": "x"}, auth)
    check_error(server, "missing text", 400, "missing field \"text\"", "POST", p,
                {"image": img}, auth)
    check_error(server, "unknown field", 400, "unknown field \"txt\"", "POST", p,
                {"image": img, "txt": "x"}, auth)
    check_error(server, "bad base64", 400, "not base64", "POST", p,
                {"image": "abc$def", "text": "x"}, auth)
    check_error(server, "corrupt image", 400, "not a decodable image", "POST", p,
                {"image": base64.b64encode(b"\x89PNG\r\n\x1a\n" + b"\0" * 200).decode(),
                 "text": "x"}, auth)
    huge = (b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR" + (200000).to_bytes(4, "big") * 2 +
            b"\x08\x02\0\0\0" + b"\0" * 64)
    check_error(server, "oversized image", 400, "pixels is more than", "POST", p,
                {"image": base64.b64encode(huge).decode(), "text": "x"}, auth)
    check_error(server, "body too large", 413, "max-body-mb", "POST", p,
                {"image": "A" * 800000, "text": "x"}, auth)
    check_error(server, "too many items", 413, "at most --max-items 8", "POST", p,
                [{"image": img, "text": "x"}] * 9, auth)
    check_error(server, "path outside the root", 403, "outside --image-root", "POST", p,
                {"image_path": "../../etc/passwd", "text": "x"}, auth)
    os.symlink("/etc/hostname", os.path.join(scenes, "link_out.png"))
    check_error(server, "symlink out of the root", 403, "outside --image-root", "POST", p,
                {"image_path": "link_out.png", "text": "x"}, auth)
    os.mkfifo(os.path.join(scenes, "fifo.png"))
    check_error(server, "a FIFO", 400, "FIFO|not a regular file", "POST", p,
                {"image_path": "fifo.png", "text": "x"}, auth)
    check_error(server, "unknown endpoint", 404, "no endpoint", "GET", "/nope", None, auth)
    check_error(server, "wrong method", 405, "use POST", "GET", p, None, auth)
    check_error(server, "embed on a vqa model", 400, "needs a retrieval checkpoint", "POST",
                "/v1/embed", {"text": "x"}, auth)
    check_error(server, "caption on a vqa model", 400, "needs a caption checkpoint", "POST",
                "/v1/caption", {"text": "x"}, auth)

    # a client that sends half a body and goes away; one that stalls (timeout-s 2)
    for stall in (False, True):
        s = socket.create_connection(("127.0.0.1", server.port))
        s.sendall(b"POST /v1/predict HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer s3cret-key\r\n"
                  b"Content-Type: application/json\r\nContent-Length: 1000\r\n\r\n{\"image\":")
        if stall:
            s.settimeout(10)
            start = time.time()
            try:
                data = s.recv(4096)
            except socket.timeout:
                data = None
            took = time.time() - start
            if data is None or took > 8 or not data.startswith(b"HTTP/1.1 408"):
                fail(f"stalled client not cut off ({took:.1f} s)")
            else:
                print(f"ok   stalled client cut off after {took:.1f} s: {data[:40]!r}")
        s.close()
    health, _ = server.request("GET", "/health")
    if health != 200:
        fail(f"health after faulty clients: {health}")

    # ---- issue 40: hostile clients (--max-body-mb 0.5, --timeout-s 2) ----
    key_header = b"Authorization: Bearer s3cret-key\r\n"
    post = b"POST /v1/predict HTTP/1.1\r\nHost: x\r\n" + key_header
    mib = b"x" * (1 << 20)
    chunk = b"100000\r\n" + mib + b"\r\n"
    check_hostile(server, "300 MB chunked body", 413,
                  post + b"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n",
                  (chunk for _ in range(300)), expect="max-body-mb")
    check_hostile(server, "300 MB body without a length, ended by a half-close", 411,
                  post + b"Content-Type: application/json\r\n\r\n", (mib for _ in range(300)),
                  half_close=True, expect="Content-Length")
    deflate = zlib.compressobj(1, zlib.DEFLATED, 31)  # gzip
    gz = b"".join(deflate.compress(b"\0" * (1 << 20)) for _ in range(300)) + deflate.flush()
    check_hostile(server, f"gzip body of {len(gz) >> 10} KB (300 MB inflated)", 415,
                  post + b"Content-Type: application/json\r\nContent-Encoding: gzip\r\n"
                  b"Content-Length: " + str(len(gz)).encode() + b"\r\n\r\n", [gz],
                  expect="Content-Encoding")
    check_hostile(server, "12 MB of small headers", 431, b"GET /health HTTP/1.1\r\nHost: x\r\n",
                  [b"X-A: b\r\n" * (12 << 17), b"\r\n"])
    check_hostile(server, "1000 header fields", 431,
                  b"GET /health HTTP/1.1\r\nHost: x\r\n" +
                  b"".join(b"X-%d: b\r\n" % i for i in range(1000)) + b"\r\n")
    check_hostile(server, "Content-Length over the limit, no body", 413,
                  post + b"Content-Type: application/json\r\nContent-Length: 10000000\r\n\r\n",
                  within=1.0, expect="max-body-mb")
    # Expect: 100-continue with a body that will not be taken: 413, never "100 Continue"
    got, _, body, took = send_and_read(
        server, post + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
        b"Content-Length: 999999999999\r\n\r\n")
    if got != 413 or took > 1:
        fail(f"Expect: 100-continue over the limit: {got} after {took:.1f} s")
    else:
        print(f"ok   Expect: 100-continue over the limit: {got} at once, no 100 Continue")
    # ... and with a body that will be: 100 Continue, then the answer
    small = json.dumps({"image": img, "text": inputs[0]["text"]}).encode()
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(10)
    s.sendall(post + b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
              b"Content-Length: " + str(len(small)).encode() + b"\r\n\r\n")
    f = s.makefile("rb")
    first = f.readline()
    f.readline()
    s.sendall(small)
    got, _, body = read_response(f)
    s.close()
    if not first.startswith(b"HTTP/1.1 100") or got != 200:
        fail(f"Expect: 100-continue within the limit: {first!r}, then {got}")
    # Range: ignored, a full 200 (never a fragment, never a multi-part blow-up)
    status, body, hdrs = server.request("POST", p, {"image": img, "text": "x"},
                                        {**auth, "Range": "bytes=5-20"}, raw=True)
    if status != 200 or "content-range" in {k.lower() for k in hdrs} or "answers" not in \
            json.loads(body):
        fail(f"Range on /v1/predict: {status} {body[:100]!r}")
    ranges = "bytes=" + ",".join(f"{i}-{i + 1000}" for i in range(0, 1000, 1))[:4500]
    full = server.request("GET", "/metrics", None, auth, raw=True)[1]
    status, body, hdrs = server.request("GET", "/metrics", None, {**auth, "Range": ranges},
                                        raw=True)
    if status != 200 or not body.startswith(b"# ") or len(body) > 4 * len(full):
        fail(f"multi-range /metrics: {status}, {len(body)} bytes")
    else:
        print(f"ok   Range ignored: full 200 answers ({len(body)} bytes of /metrics)")
    # pipelining: 4 requests in one write, 4 answers in order
    s = socket.create_connection(("127.0.0.1", server.port))
    s.settimeout(10)
    s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n" +
              b"GET /v1/model HTTP/1.1\r\nHost: x\r\n" + key_header + b"\r\n" +
              post + b"Content-Length: " + str(len(small)).encode() + b"\r\n\r\n" + small +
              b"GET /nope HTTP/1.1\r\nHost: x\r\n" + key_header + b"\r\n")
    f = s.makefile("rb")
    got = [read_response(f) for _ in range(4)]
    s.close()
    try:
        ok = ([g[0] for g in got] == [200, 200, 200, 404] and
              json.loads(got[0][2]) == {"status": "ok"} and json.loads(got[1][2])["task"] == "vqa"
              and "answers" in json.loads(got[2][2]) and "no endpoint" in
              json.loads(got[3][2])["error"])
    except (ValueError, KeyError, TypeError):
        ok = False
    if not ok:
        fail(f"pipelining: {[(g[0], g[2][:60]) for g in got]}")
    else:
        print("ok   pipelining: 4 requests in one write, 4 answers in order")
    # numbers and bodies that are the client's fault: 400 / 415 with a short message
    check_error(server, "top_k 1e400", 400, "number out of range", "POST", p,
                b'{"image": "' + img.encode() + b'", "text": "x", "top_k": 1e400}', auth)
    big = b'{"image": "' + img.encode() + b'", "text": "x", "top_k": 1' + b"0" * 100000 + b"}"
    got, payload, _ = server.request("POST", p, big, auth, raw=True)
    if got != 400 or len(payload) > 300 or b"00000" in payload:
        fail(f"100,000-digit top_k: {got} {payload[:200]!r} ({len(payload)} bytes)")
    check_error(server, "multipart body", 415, "Content-Type multipart/form-data", "POST", p,
                b"--x\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n--x--\r\n",
                {**auth, "Content-Type": "multipart/form-data; boundary=x"})
    check_error(server, "lowercase bearer", 400, "missing field \"text\"", "POST", p,
                {"image": img}, {"authorization": "bearer s3cret-key"})

    # 150 slow clients trickling header bytes: /health and a prediction still answer at once,
    # and each slow client is cut off by the whole-request deadline (--timeout-s 2)
    slow = []
    for _ in range(150):
        c = socket.create_connection(("127.0.0.1", server.port))
        c.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        slow.append(c)
    stop_trickle = threading.Event()

    def trickle():
        while not stop_trickle.wait(0.5):
            for c in slow:
                try:
                    c.send(b"a")
                except OSError:
                    pass

    trickler = threading.Thread(target=trickle, daemon=True)
    trickler.start()
    time.sleep(0.6)
    start = time.time()
    health, _ = server.request("GET", "/health")
    t_health = time.time() - start
    start = time.time()
    status, _ = server.request("POST", p, {"image": img, "text": "x"}, auth)
    t_predict = time.time() - start
    if health != 200 or status != 200 or t_health > 2 or t_predict > 2:
        fail(f"150 slow clients: /health {health} in {t_health:.2f} s, predict {status} in "
             f"{t_predict:.2f} s")
    else:
        print(f"ok   150 slow clients: /health in {t_health * 1000:.0f} ms, predict in "
              f"{t_predict * 1000:.0f} ms")
    time.sleep(2.5)  # past --timeout-s 2 since their first byte, trickling all along
    cut = 0
    for c in slow:
        c.settimeout(0.5)
        try:
            data = c.recv(100)
            cut += data == b"" or data.startswith(b"HTTP/1.1 408")
        except ConnectionResetError:
            cut += 1
        except socket.timeout:
            pass
    stop_trickle.set()
    trickler.join()
    for c in slow:
        c.close()
    health, _ = server.request("GET", "/health")
    if cut != len(slow) or health != 200:
        fail(f"slow clients cut off by the request deadline: {cut} of {len(slow)}; "
             f"health {health}")
    else:
        print(f"ok   all {cut} slow clients cut off by the whole-request deadline")

    # ---- metrics ----
    status, text, _ = server.request("GET", "/metrics", None, auth, raw=True)
    text = text.decode()

    def metric(name, labels=""):
        m = re.search(r"^" + re.escape(name + labels) + r" (\S+)$", text, re.M)
        return float(m.group(1)) if m else None

    ok200 = metric("xmodal_requests_total", '{endpoint="/v1/predict",code="200"}')
    inferences, executions = metric("xmodal_inferences_total"), metric("xmodal_executions_total")
    checks = {
        "predict 200s >= 34": ok200 is not None and ok200 >= 34,
        "401s counted": (metric("xmodal_requests_total", '{endpoint="/v1/predict",code="401"}')
                         or 0) >= 2,
        "images decoded >= 41": (metric("xmodal_images_decoded_total") or 0) >= 41,
        "inferences >= 41": (inferences or 0) >= 41,
        "batches formed (inferences > executions)": (inferences or 0) > (executions or 1e9),
        "bad_base64 counted": (metric("xmodal_errors_total", '{kind="bad_base64"}') or 0) >= 2,
        "too_large counted": (metric("xmodal_errors_total", '{kind="too_large"}') or 0) >= 1,
        "queue time histogram": metric("xmodal_queue_duration_seconds_count") == inferences,
        "latency histogram": (metric("xmodal_request_duration_seconds_count",
                                     '{endpoint="/v1/predict"}') or 0) >= 34,
        "batch size histogram": metric("xmodal_batch_size_count") == executions,
        "queue depth": metric("xmodal_queue_depth") == 0,
        "ready": metric("xmodal_model_ready") == 1,
    }
    for name, ok in checks.items():
        if not ok:
            fail(f"metrics: {name}")
    print(f"ok   metrics ({inferences:.0f} inferences in {executions:.0f} executions)")
    status, body = server.request("GET", "/v1/model", None, auth)
    if status != 200 or body.get("task") != "vqa" or body.get("step") != 6:
        fail(f"/v1/model: {status} {body}")

    # ---- SIGTERM while requests are in flight: each is answered, exit 0 ----
    late = [None] * 16

    def late_client(i):
        try:
            late[i] = server.request("POST", "/v1/predict",
                                     {"image": img, "text": inputs[i]["text"]}, auth)[0]
        except OSError as e:
            late[i] = f"{type(e).__name__}: {e}"

    threads = [threading.Thread(target=late_client, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    time.sleep(0.01)
    rc = server.stop()
    for t in threads:
        t.join()
    if rc != 0:
        fail(f"exit after SIGTERM: {rc}; {server.stderr()[-2000:]}")
    answered = sum(1 for s in late if s == 200)
    refused = [s for s in late if s != 200]
    # a request that reached the server is answered; one that came after the stop is refused
    # at connect time (never accepted, so never lost)
    if any(not (isinstance(s, str) and "ConnectionRefused" in s) for s in refused):
        fail(f"requests in flight at SIGTERM: {late}")
    print(f"ok   SIGTERM: exit {rc}; {answered} in-flight requests answered, "
          f"{len(refused)} refused at connect")

    # ---- a full queue, and paths without --image-root ----
    server = Served("--checkpoint", vqa, "--queue", "4", "--max-items", "10", "--max-batch", "8",
                    "--max-delay-ms", "1500", "--max-connections", "20")
    check_error(server, "more items than the queue holds", 413, "queue holds at most --queue 4",
                "POST", p, [{"image": img, "text": "x"}] * 10)
    # a queue that is full now: 3 items wait for a batch (--max-delay-ms 1500), 3 more do not fit
    waiting = threading.Thread(target=server.request,
                               args=("POST", p, [{"image": img, "text": "x"}] * 3))
    waiting.start()
    time.sleep(0.4)
    check_error(server, "full queue", 503, "queue is full", "POST", p,
                [{"image": img, "text": "x"}] * 3, contains="Retry-After")
    waiting.join()
    check_error(server, "paths need --image-root", 403, "image-root", "POST", p,
                {"image_path": inputs[0]["image"], "text": "x"})
    # a 3 MB unknown key: a short error, a short log line
    log_before = len(server.stderr())
    check_error(server, "3 MB unknown field", 400, r"unknown field \"x{100}\.\.\.\"", "POST", p,
                b'{"image": "' + img.encode() + b'", "' + b"x" * (3 << 20) + b'": 1}')
    status, payload, _ = server.request("POST", p, b'{"' + b"x" * (3 << 20) + b'": 1}', raw=True)
    logged = len(server.stderr()) - log_before
    if len(payload) > 400 or logged > 2000:
        fail(f"unknown field echoed: answer {len(payload)} bytes, log +{logged} bytes")
    # the connection cap (--max-connections 20): one more gets 503 (or is closed); then healthy
    held = [socket.create_connection(("127.0.0.1", server.port)) for _ in range(20)]
    time.sleep(0.3)
    extra = socket.create_connection(("127.0.0.1", server.port))
    extra.settimeout(5)
    try:
        data = extra.recv(200)
    except OSError:
        data = b""
    extra.close()
    for c in held:
        c.close()
    time.sleep(0.3)
    health, _ = server.request("GET", "/health")
    if not (data == b"" or data.startswith(b"HTTP/1.1 503")) or health != 200:
        fail(f"connection cap: {data[:40]!r}, health after {health}")
    else:
        print(f"ok   connection cap: the 21st connection got {data[:12]!r}; healthy after")
    # SIGHUP is treated as SIGTERM: drained, exit 0
    server.proc.send_signal(signal.SIGHUP)
    try:
        rc = server.proc.wait(30)
    except subprocess.TimeoutExpired:
        server.proc.kill()
        rc = "hung"
    if rc != 0 or "stopping" not in server.stderr():
        fail(f"SIGHUP: exit {rc}")
    else:
        print("ok   SIGHUP: drained like SIGTERM, exit 0")

    # flags and key files refused at start, with one line naming what is wrong
    bad_starts = [(["--drain-s", "nan"], "--drain-s"), (["--drain-s", "inf"], "--drain-s"),
                  (["--max-body-mb", "nan"], "--max-body-mb"),
                  (["--max-delay-ms", "inf"], "--max-delay-ms"),
                  (["--timeout-s", "99999999999"], "--timeout-s"),
                  (["--queue", "1e9"], "--queue")]
    for name, contents, why in [("tab", b"ab\tcd\n", "a tab"), ("trailing tab", b"abcd\t\n", "a tab"),
                                ("two lines", b"abcd\nefgh\n", "more than one line"),
                                ("NUL", b"ab\0cd", "a NUL byte"), ("empty", b"\n", "empty")]:
        path = os.path.join(WORK, f"key {name}")
        with open(path, "wb") as f:
            f.write(contents)
        bad_starts.append((["--api-key-file", path], f"{re.escape(path)}: .*{why}"))
    for args, expect in bad_starts:
        r = subprocess.run([XMODAL, "serve", "--checkpoint", vqa, "--port", "0", *args],
                           capture_output=True, text=True, timeout=30)
        lines = [line for line in r.stderr.splitlines() if line.strip()]
        if r.returncode == 0 or "listening" in r.stdout or not any(
                re.search(expect, line) for line in lines):
            fail(f"serve {' '.join(args)}: exit {r.returncode}, {r.stderr[-300:]!r}")
    print(f"ok   {len(bad_starts)} bad flags and key files refused at start")

    # ---- int8: a --quantize int8 server answers as `xmodal predict --quantize int8` ----
    expected8 = [{k: v for k, v in json.loads(line).items() if k not in ("line", "image")}
                 for line in run("predict", "--checkpoint", vqa, "--quantize", "int8", "--input",
                                 os.path.join(WORK, "inputs.jsonl"), "--top-k", "5")
                 .stdout.splitlines()]
    server = Served("--checkpoint", vqa, "--quantize", "int8", "--max-batch", "8")
    status, info = server.request("GET", "/v1/model")
    if status != 200 or info.get("quantization") != "int8":
        fail(f"int8 /v1/model: {status} {info}")
    status, body = server.request("POST", "/v1/predict", [
        {"image": b64(i["image"]), "text": i["text"]} for i in inputs[:8]])
    # Dynamic quantization takes the range of the whole input tensor, so an item's int8 answer
    # depends a little on the batch it ran in: the same best answer, probabilities within 0.01.
    problem = f"status {status} {body}" if status != 200 else None
    for i, (got, want) in enumerate(zip(body if status == 200 else [], expected8[:8])):
        a, b = got["answers"], want["answers"]
        if a[0]["answer"] != b[0]["answer"] or any(
                abs(x["probability"] - y["probability"]) > 0.01 for x, y in zip(a, b)):
            problem = f"item {i}: {a[:2]} vs {b[:2]}"
    if problem:
        fail(f"int8 predict: {problem}")
    else:
        print("ok   int8 server (--quantize int8) = xmodal predict --quantize int8")
    if server.stop() != 0:
        fail("int8 server: exit code")

    # ---- retrieval: embed equals `xmodal embed`, search equals `xmodal search` ----
    index = os.path.join(WORK, "index")
    run("index", "--checkpoint", rt, "--split", "test", "--out", index)
    server = Served("--checkpoint", rt, "--index", index)
    text = "a picture showing a bag in the middle."
    status, body = server.request("POST", "/v1/embed", [{"image": img}, {"text": text},
                                                        {"image": img, "text": text}])
    if status != 200 or len(body) != 3 or body[2]["dim"] != 8:
        fail(f"/v1/embed: {status} {body}")
    else:
        emb = os.path.join(WORK, "emb")
        with open(os.path.join(WORK, "one.jsonl"), "w") as f:
            f.write(json.dumps({"image": inputs[0]["image"], "text": text}) + "\n")
        cli_search = [json.loads(line) for line in run(
            "search", "--index", index, "--text", text, "--top-k", "5").stdout.splitlines()]
        diff = max(abs(a - b) for a, b in zip(body[0]["image_embedding"],
                                               body[2]["image_embedding"]))
        if diff > 1e-6 or body[1]["text_embedding"] != body[2]["text_embedding"]:
            fail("/v1/embed: an item's embeddings depend on what else it holds")
        status, found = server.request("POST", "/v1/search", {"text": text, "top_k": 5})
        if status != 200 or [r["path"] for r in found["results"]] != [r["path"] for r in
                                                                      cli_search]:
            fail(f"/v1/search vs xmodal search: {found} vs {cli_search}")
        elif any(abs(a["score"] - b["score"]) > 1e-5 for a, b in zip(found["results"],
                                                                    cli_search)):
            fail("/v1/search scores differ from xmodal search")
        else:
            print("ok   /v1/embed and /v1/search (= xmodal search)")
        del emb
    check_error(server, "search with both", 400, "exactly one", "POST", "/v1/search",
                {"text": "x", "image": img})
    check_error(server, "search with an empty text", 400, "empty text", "POST", "/v1/search",
                {"text": ""})
    check_error(server, "embed with an empty text", 400, "empty text", "POST", "/v1/embed",
                {"text": " "})
    if server.stop() != 0:
        fail("retrieval server: exit code")

    # ---- caption: /v1/caption answers as `xmodal predict` ----
    with open(os.path.join(WORK, "cap.yaml"), "w") as f:
        f.write(f"""task: caption
run: {{dir: {WORK}/cap, threads: 2, seed: 3}}
data: {{root: {scenes}, image_size: 32, workers: 1, max_text_len: 16}}
model:
{encoders.replace("intermediate: 32}", "intermediate: 32, max_position: 16}")}  fusion: {{hidden: 16, layers: 1, heads: 2, mlp_dim: 32}}
  head: {{hidden: 16}}
train: {{batch_size: 16, max_steps: 4, eval_every: 4, checkpoint_every: 4}}
eval: {{caption: {{beam_size: 3, max_length: 12}}}}
""")
    run("train", os.path.join(WORK, "cap.yaml"))
    cap = os.path.join(WORK, "cap", "last")
    pictures = [i["image"] for i in inputs[:8]]
    want = [json.loads(run("predict", "--checkpoint", cap, "--image", p, "--top-k", "3").stdout)
            for p in pictures]
    server = Served("--checkpoint", cap, "--max-batch", "4", "--max-delay-ms", "20")
    got = [None] * len(pictures)

    def caption_client(i):
        got[i] = server.request("POST", "/v1/caption", {"image": b64(pictures[i]), "top_k": 3})

    threads = [threading.Thread(target=caption_client, args=(i,)) for i in range(len(pictures))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    problems = []
    for (status, body), w in zip(got, want):
        if status != 200 or body.get("caption") != w.get("caption") or \
                [c["caption"] for c in body["captions"]] != [c["caption"] for c in w["captions"]]:
            problems.append(f"{status} {body} vs {w}")
        elif any(abs(a["probability"] - b["probability"]) > 1e-5
                 for a, b in zip(body["captions"], w["captions"])):
            problems.append(f"probabilities {body} vs {w}")
    if problems:
        fail(f"/v1/caption vs xmodal predict: {problems[0]}")
    else:
        print("ok   /v1/caption under 8 concurrent clients = xmodal predict")
    if server.stop() != 0:
        fail("caption server: exit code")

    # a checkpoint that cannot be loaded: one line, exit 1 (no server left answering 503)
    r = subprocess.run([XMODAL, "serve", "--checkpoint", os.path.join(WORK, "none"), "--port",
                        "0"], capture_output=True, text=True, timeout=60)
    if r.returncode != 1 or "cannot load the model: checkpoint" not in r.stderr:
        fail(f"unloadable checkpoint: exit {r.returncode}, {r.stderr[-300:]!r}")

    if FAILURES:
        print(f"{len(FAILURES)} failure(s); work folder kept: {WORK}")
        sys.exit(1)
    shutil.rmtree(WORK, ignore_errors=True)
    print("serve test: all passed")


if __name__ == "__main__":
    main()
