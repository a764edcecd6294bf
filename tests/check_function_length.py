#!/usr/bin/python3
"""No function in lib/ longer than LIMIT lines (docs/design.md section 11): a
longer one is split by what its parts do. Counts the lines from a function body's opening brace
to its closing one, for functions at namespace or class level (lambdas and nested blocks are
part of their function); comments and string literals are blanked first, so braces in them do
not count. A violation prints FILE:LINE, the length and the signature, and the test fails.

    tests/check_function_length.py [LIB_DIR] [LIMIT]      (CTest: function_length)
"""
import glob
import os
import re
import sys

DEFAULT_LIMIT = 125
# Tables written as code, not logic: allowed to be longer.
TABLES = {"unicode_tables.cpp"}


def blank(src):
    """Comments and literals replaced by nothing (newlines kept, so line numbers hold)."""
    keep_lines = lambda m: "\n" * m.group(0).count("\n")
    src = re.sub(r'R"([^(]*)\((.*?)\)\1"', lambda m: '""' + keep_lines(m), src, flags=re.S)
    src = re.sub(r"//[^\n]*", "", src)
    src = re.sub(r"/\*.*?\*/", keep_lines, src, flags=re.S)
    src = re.sub(r'"(\\.|[^"\\\n])*"', '""', src)
    src = re.sub(r"'(\\.|[^'\\\n])+'", "''", src)
    return src


def long_functions(path, limit):
    src = blank(open(path, encoding="utf-8").read())
    stack, last, line, found = [], 0, 1, []
    for i, ch in enumerate(src):
        if ch == "\n":
            line += 1
        elif ch == ";":
            last = i + 1
        elif ch == "{":
            head = src[last:i]
            if all(kind in ("namespace", "class") for kind, _, _ in stack):
                if re.search(r"\bnamespace\b", head):
                    kind = "namespace"
                elif "(" not in head and re.search(r"\b(class|struct|union|enum)\b", head):
                    kind = "class"
                elif ")" in head:
                    kind = "function"
                else:
                    kind = "other"
            else:
                kind = "inner"
            signature = " ".join(head.split())[-90:]
            stack.append((kind, line, signature))
            last = i + 1
        elif ch == "}":
            if stack:
                kind, start, signature = stack.pop()
                if kind == "function" and line - start + 1 > limit:
                    found.append((start, line - start + 1, signature))
            last = i + 1
    return found


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    lib = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "..", "lib")
    limit = int(sys.argv[2]) if len(sys.argv) > 2 else DEFAULT_LIMIT
    problems, files = [], 0
    for path in sorted(glob.glob(os.path.join(lib, "**", "*.cpp"), recursive=True) +
                       glob.glob(os.path.join(lib, "**", "*.h"), recursive=True)):
        if os.path.basename(path) in TABLES:
            continue
        files += 1
        for start, length, signature in long_functions(path, limit):
            problems.append(f"{os.path.relpath(path, os.path.join(lib, '..'))}:{start}: "
                            f"{length} lines (limit {limit}): {signature}")
    for p in problems:
        print(p)
    print(f"function_length: {files} files, {len(problems)} function(s) over {limit} lines")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
