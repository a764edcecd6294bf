#!/usr/bin/python3
"""The include direction of lib/ (docs/design.md section 1), checked: every `#include "xmodal/F/..."`
in lib/xmodal/G/ must name a folder F that G may use. The folders form a DAG:

    core <- io <- config <- text <- data, models <- tasks <- checkpoint <- infer <- eval <- train
                                                                           infer <- serve

(config reads pretrained folders' config.json through io; checkpoint builds a checkpoint's
model with its task's head; train uses eval for validation, eval uses infer). A violation is
printed as FILE:LINE with the two folders, and the test fails.

    tests/check_layers.py [LIB_DIR]        (CTest: layers)
"""
import os
import re
import sys

# Each folder and the folders it may include from (besides itself).
ALLOWED = {
    "core": set(),
    "config": {"core", "io"},
    "io": {"core"},
    "text": {"core", "config", "io"},
    "data": {"core", "config", "io", "text"},
    "models": {"core", "config", "io", "text"},
    "tasks": {"core", "config", "io", "text", "data", "models"},
    "checkpoint": {"core", "config", "io", "text", "data", "models", "tasks"},
    "infer": {"core", "config", "io", "text", "data", "models", "checkpoint", "tasks"},
    "eval": {"core", "config", "io", "text", "data", "models", "checkpoint", "tasks", "infer"},
    "train": {"core", "config", "io", "text", "data", "models", "checkpoint", "tasks", "infer",
              "eval"},
    "serve": {"core", "config", "io", "text", "data", "models", "checkpoint", "tasks", "infer"},
}
INCLUDE = re.compile(r'^\s*#\s*include\s+"xmodal/([a-z_]+)/')


def main():
    root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), "..", "lib")
    lib = os.path.join(root, "xmodal")
    problems, files = [], 0
    for folder in sorted(os.listdir(lib)):
        path = os.path.join(lib, folder)
        if not os.path.isdir(path):
            continue
        if folder not in ALLOWED:
            problems.append(f"{path}: folder '{folder}' has no place in the layer list of "
                            f"tests/check_layers.py")
            continue
        for dirpath, _, names in os.walk(path):
            for name in sorted(names):
                if not name.endswith((".h", ".cpp", ".in")):
                    continue
                files += 1
                file = os.path.join(dirpath, name)
                with open(file, encoding="utf-8") as f:
                    for number, line in enumerate(f, 1):
                        m = INCLUDE.match(line)
                        if not m or m.group(1) == folder:
                            continue
                        used = m.group(1)
                        if used not in ALLOWED:
                            problems.append(f"{file}:{number}: includes unknown folder '{used}'")
                        elif used not in ALLOWED[folder]:
                            # upward: the other folder may use this one (a cycle); sideways:
                            # neither may use the other
                            kind = "upward" if folder in ALLOWED[used] else "sideways"
                            problems.append(
                                f"{file}:{number}: {folder}/ must not include {used}/ "
                                f"({kind} include: {line.strip()})")
    for p in problems:
        print(p)
    print(f"layers: {files} files, {len(problems)} violation(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
