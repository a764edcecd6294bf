#!/usr/bin/env python3
"""The longest functions of lib/ (or another folder), longest first: a reviewing aid for the
~120-line target of the architecture issue. A heuristic, not a parser: a function is a line
ending in '{' after a ')' (not a control statement, class, namespace or initialiser), measured
from its signature to the matching brace; lambdas inside count within their function.

    scripts/function_lengths.py [FOLDER] [N]      # default lib/xmodal, 15
"""
import os, re, sys
root = sys.argv[1] if len(sys.argv) > 1 else os.path.join(
    os.path.dirname(os.path.abspath(__file__)), '..', 'lib', 'xmodal')
SKIP = re.compile(r'^\s*(namespace|class|struct|enum|union|extern|if|for|while|switch|do|else|try|catch)\b')
res = []
for dp, _, names in os.walk(root):
    for n in names:
        if not n.endswith(('.cpp', '.h')) or n == 'unicode_tables.cpp':
            continue
        p = os.path.join(dp, n)
        lines = open(p, encoding='utf-8').read().split('\n')
        i = 0
        while i < len(lines):
            l = lines[i]
            s = l.rstrip()
            if s.endswith('{') and not SKIP.match(s) and '=' not in s.split('(')[0] and not s.strip().startswith(('//', '{', '}', '[')) :
                # find signature start: go back to a line that starts at col <= indent with identifier
                # require ')' somewhere in this line or previous up to 4 lines
                sig = ' '.join(lines[max(0, i-4):i+1])
                if ')' not in s and ') const' not in s and not re.search(r'\)\s*(const|override|noexcept|final|\s)*(->\s*[\w:<>]+)?\s*\{$', s) and not re.search(r'^\s*:\s|^\s+[a-z_]+\(.*\)\s*\{$', s):
                    i += 1; continue
                # brace match
                depth = 0; j = i
                started = False
                while j < len(lines):
                    code = re.sub(r'"(\\.|[^"\\])*"', '""', lines[j])
                    code = re.sub(r"'(\\.|[^'\\])*'", "''", code)
                    code = code.split('//')[0]
                    for ch in code:
                        if ch == '{': depth += 1; started = True
                        elif ch == '}': depth -= 1
                    if started and depth == 0: break
                    j += 1
                # find start of signature: walk back while previous lines are continuation (no ; { } at end)
                k = i
                while k > 0 and lines[k-1].strip() and not lines[k-1].rstrip().endswith((';', '{', '}', '*/')) and not lines[k-1].strip().startswith(('//', '#')):
                    k -= 1
                name = re.search(r'([\w:~]+)\s*\(', ' '.join(lines[k:i+1]))
                res.append((j - k + 1, p, k + 1, name.group(1) if name else '?'))
                i = j + 1 if depth == 0 and (j - i) > 0 and lines[i].startswith(('}',)) else i + 1
                continue
            i += 1
# keep only outermost (dedupe nested: lambdas inside functions are counted too; fine)
res.sort(reverse=True)
for r in res[:int(sys.argv[2]) if len(sys.argv) > 2 else 15]:
    print(f"{r[0]:4d}  {r[1]}:{r[2]}  {r[3]}")
