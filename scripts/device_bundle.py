#!/usr/bin/env python3
"""The helper of scripts/device_check.sh: what goes into the GPU machine's bundle, the proof that
it is complete, and the readings taken there. Standard library only (readelf/ldd for ELF facts
on the packing side).

  device_bundle.py collect STAGE BINARY...    # copy the binaries' non-provided shared libraries
                                              # (recursive DT_NEEDED) into STAGE/lib
  device_bundle.py verify DIR BINARY...       # closure check: DT_NEEDED resolves in DIR/lib or
                                              # is a provided name; then the real loader (ldd)
  device_bundle.py libpath DIR                # DIR/lib and its sub-folders, ':'-separated
  device_bundle.py ldd-check ALLOWED_DIRS BINARY...  # on the GPU machine: where ld.so resolves
  device_bundle.py runpath FILE...            # DT_RPATH -> DT_RUNPATH in place (bundle copies)
  device_bundle.py fashion SRC DST NTRAIN NTEST  # a trimmed copy of Fashion-MNIST's IDX files
  device_bundle.py rate METRICS_JSONL         # median samples/s after the first record
  device_bundle.py compare A.safetensors B.safetensors  # max abs difference of every tensor

"Provided" = what the GPU machine has without the bundle: LibTorch's own libraries (torch/lib
of its python3's torch), the NVIDIA wheels' CUDA libraries (site-packages/nvidia/*/lib), the
driver's libcuda, and the base system (glibc, libstdc++, libgcc_s).
"""
import gzip
import json
import os
import re
import shutil
import struct
import subprocess
import sys

PROVIDED = [
    # LibTorch, from torch/lib of the GPU machine's torch wheel
    r"lib(torch|torch_cpu|torch_cuda|torch_cuda_linalg|torch_global_deps|torch_nvshmem|torch_python)\.so",
    r"libc10(_cuda)?\.so", r"libcaffe2_nvrtc\.so", r"libshm\.so", r"libgomp\.so\.1",
    # CUDA: the driver (libcuda, libnvidia-ml) and the nvidia-* wheels
    r"libcuda\.so\.1", r"libnvidia-ml\.so\.1",
    r"lib(cudart|cupti|nvrtc|nvrtc-builtins|nvJitLink|cublas|cublasLt|cufft|cufftw|curand|cusolver|"
    r"cusolverMg|cusparse|cusparseLt|cudnn[A-Za-z_]*|nccl|nvshmem_host|cufile|cufile_rdma|"
    r"nvToolsExt|nvtx3interop|nvperf_host|nvperf_target|checkpoint|pcsamplingutil)\.so(\.[0-9]+)*",
    # the base system: glibc, the C++ runtime
    r"(libc|libm|libdl|librt|libpthread|libresolv|libutil|libanl|libmvec)\.so\.[0-9]+",
    r"ld-linux-x86-64\.so\.2", r"linux-vdso\.so\.1", r"libstdc\+\+\.so\.6", r"libgcc_s\.so\.1",
]
PROVIDED_RE = re.compile("^(?:" + "|".join(PROVIDED) + ")$")
BASE_RE = re.compile(r"^(?:(libc|libm|libdl|librt|libpthread|libresolv|libutil|libanl|libmvec)"
                     r"\.so\.[0-9]+|ld-linux-x86-64\.so\.2|linux-vdso\.so\.1|libstdc\+\+\.so\.6|"
                     r"libgcc_s\.so\.1|libcuda\.so\.1|libnvidia-ml\.so\.1)$")


def provided(name):
    return bool(PROVIDED_RE.match(name))


def die(msg):
    print(f"[device] error: {msg}", file=sys.stderr)
    sys.exit(1)


def dynamic(path):
    """(NEEDED names, RPATH entries, RUNPATH entries) of an ELF file, read by readelf."""
    try:
        out = subprocess.run(["readelf", "-dW", path], check=True, capture_output=True,
                             text=True).stdout
    except FileNotFoundError:
        die("readelf is missing (binutils)")
    except subprocess.CalledProcessError as e:
        die(f"readelf {path}: {e.stderr.strip()}")
    needed, rpath, runpath = [], [], []
    for line in out.splitlines():
        m = re.search(r"\((NEEDED|RPATH|RUNPATH)\)\s+.*\[(.*)\]", line)
        if not m:
            continue
        if m.group(1) == "NEEDED":
            needed.append(m.group(2))
        else:
            (rpath if m.group(1) == "RPATH" else runpath).extend(m.group(2).split(":"))
    return needed, rpath, runpath


def ldd(path, env=None):
    """name -> resolved path (None: not found) as this machine's dynamic loader resolves it."""
    r = subprocess.run(["ldd", path], capture_output=True, text=True, env=env)
    if r.returncode != 0:
        die(f"ldd {path} failed: {(r.stderr or r.stdout).strip()}")
    out = {}
    for line in r.stdout.splitlines():
        line = line.strip()
        m = re.match(r"^(\S+) => (not found|(\S+) \(0x[0-9a-f]+\))$", line)
        if m:
            out[m.group(1)] = m.group(3)
        else:
            m = re.match(r"^(\S+) \(0x[0-9a-f]+\)$", line)  # ld-linux, vdso
            if m:
                out[os.path.basename(m.group(1))] = m.group(1)
    return out


STANDARD_DIRS = {"/lib", "/usr/lib", "/lib/x86_64-linux-gnu", "/usr/lib/x86_64-linux-gnu",
                 "/lib64", "/usr/lib64", "/usr/local/lib"}


def search_dirs(root):
    """ROOT/lib and its sub-folders (a library from a private folder keeps that folder's name)."""
    lib = os.path.join(root, "lib")
    return [lib] + sorted(os.path.join(lib, d) for d in os.listdir(lib)
                          if os.path.isdir(os.path.join(lib, d)))


def collect(stage, binaries):
    """Copies every non-provided library in the binaries' recursive DT_NEEDED closure into
    STAGE/lib under its DT_NEEDED name; prints 'PATH SIZE SOURCE' lines (PATH relative to
    STAGE/lib). A library found in a private folder (openblas-openmp/libblas.so.3) keeps that
    folder's name, which xmodal reads (its BLAS report). The walk stops at provided libraries
    (their own needs are the GPU machine's)."""
    lib = os.path.join(stage, "lib")
    os.makedirs(lib, exist_ok=True)
    where = {}
    for b in binaries:
        where.update({k: v for k, v in ldd(b).items() if v})
    todo, seen, carried, missing = list(binaries), set(), {}, []
    while todo:
        obj = todo.pop()
        if obj in seen:
            continue
        seen.add(obj)
        for name in dynamic(obj)[0]:
            if provided(name) or name in carried:
                continue
            src = where.get(name)
            if not src:
                missing.append(f"{name} (needed by {os.path.basename(obj)})")
                continue
            carried[name] = src
            todo.append(src)
    if missing:
        die("not found on this machine: " + ", ".join(sorted(missing)))
    for name, src in sorted(carried.items()):
        folder = os.path.dirname(os.path.normpath(src))
        rel = name if folder in STANDARD_DIRS else os.path.join(os.path.basename(folder), name)
        dst = os.path.join(lib, rel)
        os.makedirs(os.path.dirname(dst), exist_ok=True)
        shutil.copyfile(src, dst)  # follows symlinks (libblas.so.3 -> alternatives -> openblas)
        os.chmod(dst, 0o755)
        print(f"{rel} {os.path.getsize(dst)} {os.path.realpath(src)}")


PROVIDED_SEEN = set()


def walk(root, binaries):
    """Recursive DT_NEEDED closure with ROOT/lib (and its sub-folders) as the only search
    folders: (missing, used paths relative to ROOT/lib)."""
    dirs = search_dirs(root)
    todo, seen, missing, used = list(binaries), set(), [], set()
    while todo:
        obj = todo.pop()
        if obj in seen:
            continue
        seen.add(obj)
        for name in dynamic(obj)[0]:
            if provided(name):
                PROVIDED_SEEN.add(name)
                continue
            path = next((os.path.join(d, name) for d in dirs
                         if os.path.isfile(os.path.join(d, name))), None)
            if path:
                used.add(os.path.relpath(path, dirs[0]))
                todo.append(path)
            else:
                missing.append(f"{name} (needed by {os.path.relpath(obj, root)})")
    return sorted(set(missing)), used


def verify(root, binaries, torch_lib):
    """Two proofs that the unpacked bundle ROOT is complete: (1) our own DT_NEEDED walk with
    ROOT/lib as the only search folder; (2) the real loader (ldd) with LD_LIBRARY_PATH =
    ROOT/lib[:TORCH_LIB], every resolution outside those folders having to be a provided name."""
    libdir = os.path.join(root, "lib")
    missing, used = walk(root, binaries)
    present = {os.path.relpath(os.path.join(dp, n), libdir)
               for dp, _, names in os.walk(libdir) for n in names}
    unused = sorted(present - used)
    ok = not missing
    for m in missing:
        print(f"  missing: {m}")
    for u in unused:
        print(f"  note: carried but not needed: {u}")
    # (2): the real loader. The bundle's copies carry RUNPATH (not RPATH), so LD_LIBRARY_PATH wins.
    dirs = search_dirs(root) + ([torch_lib] if torch_lib else [])
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "LD_LIBRARY_PATH": ":".join(dirs)}
    for b in binaries:
        for name, path in ldd(b, env).items():
            inside = path and any(os.path.realpath(path).startswith(os.path.realpath(d) + "/")
                                  for d in dirs)
            if path is None and not provided(name):
                ok = False
                print(f"  ldd {os.path.basename(b)}: {name} not found")
            elif path and not inside and not provided(name):
                ok = False
                print(f"  ldd {os.path.basename(b)}: {name} resolves outside the bundle: {path}")
            elif path and os.path.realpath(path).startswith(os.path.realpath(libdir) + "/") \
                    and provided(name):
                ok = False
                print(f"  ldd {os.path.basename(b)}: provided {name} is in the bundle")
    print(f"  closure walked: {len(used)} carried libraries needed, {len(unused)} unused")
    print(f"  expected from the GPU machine ({len(PROVIDED_SEEN)}): {' '.join(sorted(PROVIDED_SEEN))}")
    print("resolves: yes" if ok else "resolves: NO")
    return 0 if ok else 1


def ldd_check(allowed, binaries):
    """GPU machine, LD_LIBRARY_PATH=ALLOWED for ldd only (not for this python3, whose own modules
    must not load the bundle's zlib or expat): 1 if a library does not resolve; 2 if one
    resolves outside the allowed folders (the bundle, torch/lib, nvidia/*/lib) and is not a
    base-system or driver library; else 0."""
    dirs = [os.path.realpath(d) for d in allowed.split(":") if d]
    env = dict(os.environ, LD_LIBRARY_PATH=allowed)
    missing, outside = [], []
    for b in binaries:
        for name, path in ldd(b, env).items():
            if path is None:
                missing.append(f"{os.path.basename(b)}: {name} not found")
            elif not BASE_RE.match(name) and not any(
                    os.path.realpath(path).startswith(d + "/") for d in dirs):
                outside.append(f"{os.path.basename(b)}: {name} -> {path}")
    for line in sorted(set(missing)):
        print(f"  missing: {line}")
    for line in sorted(set(outside)):
        print(f"  outside the bundle, torch/lib and nvidia/*/lib: {line}")
    return 1 if missing else 2 if outside else 0


def runpath(files):
    """Turns DT_RPATH into DT_RUNPATH in place (ELF64 little-endian): the copies' baked-in search
    folders of the build machine (/usr/lib/x86_64-linux-gnu/openblas-openmp, the LibTorch cache,
    an empty entry = the current folder) then come after LD_LIBRARY_PATH instead of before it."""
    for f in files:
        with open(f, "r+b") as fh:
            head = fh.read(64)
            if head[:4] != b"\x7fELF" or head[4] != 2 or head[5] != 1:
                die(f"{f}: not a 64-bit little-endian ELF file")
            phoff, = struct.unpack_from("<Q", head, 0x20)
            phentsize, phnum = struct.unpack_from("<HH", head, 0x36)
            for i in range(phnum):
                fh.seek(phoff + i * phentsize)
                p_type, _, p_offset, _, _, p_filesz = struct.unpack("<IIQQQQ", fh.read(40))
                if p_type != 2:  # PT_DYNAMIC
                    continue
                fh.seek(p_offset)
                entries = fh.read(p_filesz)
                tags = [struct.unpack_from("<q", entries, k)[0] for k in range(0, len(entries), 16)]
                if 29 in tags:  # DT_RUNPATH already: the loader ignores DT_RPATH then
                    break
                for k, tag in enumerate(tags):
                    if tag == 15:  # DT_RPATH
                        fh.seek(p_offset + 16 * k)
                        fh.write(struct.pack("<q", 29))
                    if tag == 0:
                        break
                break


def fashion(src, dst, ntrain, ntest):
    """The first N images and labels of Fashion-MNIST's train and t10k IDX files (gzip)."""
    os.makedirs(dst, exist_ok=True)
    for prefix, n in (("train", ntrain), ("t10k", ntest)):
        for kind, item in (("images-idx3", 28 * 28), ("labels-idx1", 1)):
            name = f"{prefix}-{kind}-ubyte.gz"
            with gzip.open(os.path.join(src, name), "rb") as fh:
                data = fh.read()
            ndim = data[3]
            dims = list(struct.unpack_from(">" + "I" * ndim, data, 4))
            n_keep = min(n, dims[0])
            body = 4 + 4 * ndim
            out = data[:4] + struct.pack(">I", n_keep) + data[8:body] + \
                data[body:body + n_keep * item]
            with open(os.path.join(dst, name), "wb") as raw, \
                    gzip.GzipFile(fileobj=raw, mode="wb", compresslevel=9, mtime=0) as fh:
                fh.write(out)


def rate(path):
    """'SAMPLES_PER_S DATA_WAIT_PERCENT RECORDS LAST_LOSS': the median samples/s of the train
    records after the first (the first holds the CUDA/cuDNN warm-up)."""
    recs = []
    with open(path) as fh:
        for line in fh:
            try:
                r = json.loads(line)
            except ValueError:
                continue
            if r.get("event") == "train" and "samples_per_s" in r:
                recs.append(r)
    if not recs:
        print("nan nan 0 nan")
        return
    use = recs[1:] or recs
    rates = sorted(r["samples_per_s"] for r in use)
    mid = len(rates) // 2
    med = rates[mid] if len(rates) % 2 else (rates[mid - 1] + rates[mid]) / 2
    # data wait: the share of each interval's seconds spent waiting for batches
    waits = []
    for prev, r in zip(recs, recs[1:]):
        secs = r["elapsed_s"] - prev["elapsed_s"]
        if secs > 0:
            waits.append(100.0 * r.get("data_wait_s", 0) / secs)
    dw = sorted(waits)[len(waits) // 2] if waits else float("nan")
    print(f"{med:.0f} {dw:.0f} {len(recs)} {recs[-1]['loss']:.4f}")


def compare(a, b):
    """'MAX_ABS_DIFF TENSOR COUNT' over the tensors of two safetensors files (the same names);
    pure Python (no numpy or torch needed)."""
    fmt = {"F32": "f", "F64": "d", "F16": "e", "BF16": "H", "I64": "q", "I32": "i", "I16": "h",
           "U8": "B", "I8": "b", "BOOL": "?"}

    def load(p):
        with open(p, "rb") as fh:
            n, = struct.unpack("<Q", fh.read(8))
            header = json.loads(fh.read(n))
            blob = fh.read()
        out = {}
        for k, v in header.items():
            if k == "__metadata__":
                continue
            s, e = v["data_offsets"]
            vals = [x[0] for x in struct.iter_unpack("<" + fmt[v["dtype"]], blob[s:e])]
            if v["dtype"] == "BF16":
                vals = [struct.unpack("<f", struct.pack("<I", h << 16))[0] for h in vals]
            out[k] = vals
        return out

    ta, tb = load(a), load(b)
    if set(ta) != set(tb):
        print(f"names differ: {sorted(set(ta) ^ set(tb))[:5]}")
        return 1
    worst, name = 0.0, "-"
    for k, va in ta.items():
        if len(va) != len(tb[k]):
            print(f"shapes differ: {k}")
            return 1
        d = max((abs(float(x) - float(y)) for x, y in zip(va, tb[k])), default=0.0)
        if d > worst or d != d:
            worst, name = d, k
    print(f"{worst:.3g} {name} {len(ta)}")
    return 0


def main(argv):
    if len(argv) < 2:
        die(__doc__)
    cmd, args = argv[1], argv[2:]
    if cmd == "collect" and len(args) >= 2:
        collect(args[0], args[1:])
    elif cmd == "verify" and len(args) >= 2:
        torch_lib = os.environ.get("XMODAL_VERIFY_TORCH_LIB", "")
        return verify(args[0], args[1:], torch_lib)
    elif cmd == "libpath" and len(args) == 1:
        print(":".join(search_dirs(args[0])))
    elif cmd == "ldd-check" and len(args) >= 2:
        return ldd_check(args[0], args[1:])
    elif cmd == "runpath" and args:
        runpath(args)
    elif cmd == "fashion" and len(args) == 4:
        fashion(args[0], args[1], int(args[2]), int(args[3]))
    elif cmd == "rate" and len(args) == 1:
        rate(args[0])
    elif cmd == "compare" and len(args) == 2:
        return compare(args[0], args[1])
    else:
        die(f"bad arguments: {' '.join(argv[1:])}\n{__doc__}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
