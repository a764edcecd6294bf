#!/usr/bin/env python3
"""Summarise a Chrome trace written by `XMODAL_PROFILE=FILE xmodal train ...` (LibTorch's
legacy profiler: training steps 11-20): total and self time per op, forward and backward
together, the largest first.

    XMODAL_PROFILE=/tmp/train.trace build/xmodal train configs/quickstart.yaml --run-dir /tmp/p \
        --set train.max_steps=21
    python3 scripts/bench/profile_summary.py /tmp/train.trace [TOP]
"""
import collections
import json
import sys


def main():
    path = sys.argv[1]
    top = int(sys.argv[2]) if len(sys.argv) > 2 else 30
    with open(path) as f:
        text = f.read().rstrip().rstrip(",")
    if not text.endswith("]"):
        text += "]"  # the legacy writer may leave the array open
    events = [e for e in json.loads(text) if e.get("ph") == "X"]
    # Self time: an event's duration minus that of the events nested directly in it (same thread).
    by_thread = collections.defaultdict(list)
    for e in events:
        by_thread[e.get("tid")].append(e)
    total = collections.Counter()
    own = collections.Counter()
    calls = collections.Counter()
    for items in by_thread.values():
        items.sort(key=lambda e: (e["ts"], -e["dur"]))
        stack = []
        for e in items:
            while stack and stack[-1]["ts"] + stack[-1]["dur"] <= e["ts"]:
                stack.pop()
            if stack:
                own[stack[-1]["name"]] -= e["dur"]
            total[e["name"]] += e["dur"]
            own[e["name"]] += e["dur"]
            calls[e["name"]] += 1
            stack.append(e)
    print(f"{'op':48s} {'calls':>7s} {'total ms':>10s} {'self ms':>10s}")
    for name, t in own.most_common(top):
        print(f"{name[:48]:48s} {calls[name]:7d} {total[name] / 1e3:10.1f} {t / 1e3:10.1f}")


if __name__ == "__main__":
    main()
