#!/usr/bin/python3
"""Cross-check of a run's TensorBoard event file with Google's protobuf library (not xmodal's
code, nor the C++ test reader): the Event / Summary messages are compiled by protoc from the
field numbers of TensorFlow's published event.proto and summary.proto, the TFRecord CRCs are
checked with crcmod's CRC-32C, and every scalar is compared with RUN_DIR/metrics.jsonl.

    apt-get install python3-protobuf protobuf-compiler      (python3-crcmod is Debian's too)
    /usr/bin/python3 scripts/check_tensorboard.py RUN_DIR

Prints one line per tag (events, first and last step, last value) and exits 1 on any mismatch.
"""
import glob
import importlib
import json
import os
import struct
import subprocess
import sys
import tempfile

import crcmod.predefined

# The messages TensorBoard's scalar dashboard reads, with TensorFlow's field numbers
# (tensorflow/core/util/event.proto, tensorflow/core/framework/summary.proto).
PROTO = """
syntax = "proto3";
package xmodal_check;
message SummaryValue {
  string node_name = 7;
  string tag = 1;
  oneof value {
    float simple_value = 2;
    bytes obsolete_old_style_histogram = 3;
  }
}
message Summary { repeated SummaryValue value = 1; }
message Event {
  double wall_time = 1;
  int64 step = 2;
  oneof what {
    string file_version = 3;
    bytes graph_def = 4;
    Summary summary = 5;
  }
}
"""

CRC32C = crcmod.predefined.mkCrcFun("crc-32c")


def masked(data):
    crc = CRC32C(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def records(path):
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        header = data[at:at + 8]
        (length,) = struct.unpack("<Q", header)
        (length_crc,) = struct.unpack("<I", data[at + 8:at + 12])
        if masked(header) != length_crc:
            raise ValueError(f"{path}: bad length CRC at byte {at}")
        body = data[at + 12:at + 12 + length]
        (body_crc,) = struct.unpack("<I", data[at + 12 + length:at + 16 + length])
        if len(body) != length or masked(body) != body_crc:
            raise ValueError(f"{path}: bad or truncated record at byte {at}")
        yield body
        at += 16 + length


def jsonl_scalars(path):
    out = {}

    def walk(value, tag, step):
        if isinstance(value, dict):
            for k, v in value.items():
                walk(v, f"{tag}/{k}", step)
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            out[(tag, step)] = float(value)

    with open(path) as f:
        for line in f:
            r = json.loads(line)
            for k, v in r.items():
                if k not in ("event", "step"):
                    walk(v, r["event"] if k == "metrics" else f"{r['event']}/{k}", r["step"])
    return out


def main():
    run_dir = sys.argv[1]
    files = sorted(glob.glob(os.path.join(run_dir, "tb", "*tfevents*")))
    if len(files) != 1:
        print(f"expected one event file in {run_dir}/tb, found {len(files)}")
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "xmodal_check.proto"), "w") as f:
            f.write(PROTO)
        subprocess.run(["protoc", f"--proto_path={tmp}", f"--python_out={tmp}",
                        "xmodal_check.proto"], check=True)
        sys.path.insert(0, tmp)
        pb = importlib.import_module("xmodal_check_pb2")
    events = []
    for body in records(files[0]):
        e = pb.Event()
        e.ParseFromString(body)
        if e.SerializeToString() != body:
            print("an event does not re-serialise to the same bytes")
            return 1
        events.append(e)
    if events[0].file_version != "brain.Event:2":
        print(f"first event: file_version {events[0].file_version!r}")
        return 1
    seen = {}
    for e in events[1:]:
        for v in e.summary.value:
            if (v.tag, e.step) in seen:
                print(f"{v.tag} twice at step {e.step}")
                return 1
            seen[(v.tag, e.step)] = v.simple_value
    expected = jsonl_scalars(os.path.join(run_dir, "metrics.jsonl"))
    bad = 0
    for key, value in expected.items():
        got = seen.get(key)
        if got is None or got != struct.unpack("<f", struct.pack("<f", value))[0]:
            print(f"{key[0]} at step {key[1]}: metrics.jsonl {value}, events {got}")
            bad += 1
    extra = set(seen) - set(expected)
    for key in sorted(extra):
        print(f"{key[0]} at step {key[1]}: in the events only")
    tags = sorted({t for t, _ in seen})
    for tag in tags:
        steps = sorted(s for t, s in seen if t == tag)
        print(f"{tag:32s} {len(steps):5d} events  steps {steps[0]}..{steps[-1]}  "
              f"last {seen[(tag, steps[-1])]:.6g}")
    print(f"{files[0]}: {len(events)} records, {len(seen)} scalars in {len(tags)} tags; "
          f"{len(expected)} in metrics.jsonl; {bad} mismatched, {len(extra)} extra")
    return 1 if bad or extra else 0


if __name__ == "__main__":
    sys.exit(main())
