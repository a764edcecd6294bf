#!/usr/bin/python3
"""The repository paths the documentation and the code cite, checked: every path that README.md,
docs/**/*.md and the comments and strings of lib/, apps/, scripts/, tests/, configs/, cmake/ and
the CMakeLists.txt files name must exist. A citation is

    a path from the repository root     lib/... apps/... docs/... scripts/... tests/... configs/...
                                         cmake/... .ci/...
    a path relative to lib/xmodal/       tasks/registry.cpp, infer/predictor.h (a layer folder and
                                         a .h / .cpp / .in file)
    a path relative to the citing file   ../scripts/test.sh (from .ci/run), ../lib/xmodal/...
    a link of a Markdown file            [text](docs/cli.md#predict) (the file and its heading)
    a bare DESIGN.md                     always a problem: the design is docs/design.md
    README "SECTION", docs/F.md "SECTION"   that file must have a heading that holds SECTION

Trailing punctuation and a :LINE suffix are stripped. Not citations: URLs, paths under runs/,
data/ (but data/README.md), build*/, pretrained/, ~/.cache and /tmp, and patterns (a *, <, >,
{, }, ..., or a placeholder such as NAME, RUN_DIR, TARGET, step-N). A problem is printed as
FILE:LINE with the path, and the test fails.

    tests/check_paths.py [REPO_DIR]        (CTest: paths)
"""
import os
import re
import sys

# Where citations are looked for: Markdown files whole, the other files' lines whole (a path in
# code outside a comment or string is not a path, so this reads them all).
MARKDOWN = ["README.md", "docs"]
SOURCES = ["lib", "apps", "scripts", "tests", "configs", "cmake", ".ci", "CMakeLists.txt"]
SOURCE_SUFFIXES = (".h", ".hpp", ".cpp", ".cc", ".c", ".in", ".py", ".sh", ".cmake", ".yaml",
                   ".yml", ".md", ".lock", ".supp")
SOURCE_NAMES = ("CMakeLists.txt", "run")
SKIP_DIRS = {"tests/data", "tests/fuzz/corpus", "tests/fuzz/regressions"}
# Generated data, not prose (the Unicode tables), and this file's own examples.
SKIP_FILES = {"lib/xmodal/text/unicode_tables.cpp", "tests/check_paths.py"}

ROOTS = ("lib/", "apps/", "docs/", "scripts/", "tests/", "configs/", "cmake/", ".ci/")
LAYERS = ("core", "io", "config", "text", "data", "models", "tasks", "checkpoint", "infer", "eval",
          "train", "serve")
IGNORED = ("runs/", "data/", "build", "pretrained/", "~/", "/tmp", ".cache/")

# A path: its characters, preceded by nothing that makes it part of a longer word or path.
PATH = re.compile(r"(?<![\w/.\-$~])((?:\.\.?/)*[\w.\-+/*<>{}~$]+/[\w.\-+/*<>{}~$:]*)")
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
BARE_DESIGN = re.compile(r"(?<![\w/.\-])DESIGN\.md")
SECTION = re.compile(r'(README|docs/[\w\-]+\.md)(?:\.md)?,? "([^"]+)"')
# NAME, RUN_DIR, step-N, line_N; x.yaml, a.png: an example, not a file.
PLACEHOLDER_PART = re.compile(r"^[A-Z][A-Z0-9_]*$|[-_][A-Z]+$|^[a-z]$")
TRAILING = ".,;:)]}'\"`"
UP = re.compile(r"^(?:\.\.?/)+")


def is_pattern(path):
    if any(c in path for c in "*<>{}$") or "..." in path:
        return True
    parts = [p for p in path.split("/") if p not in ("", ".", "..")]
    for part in parts:
        stem = part.split(".")[0] if "." in part[1:] else part
        if PLACEHOLDER_PART.search(stem):
            return True
    return False


def clean(token):
    token = re.sub(r":\d+(?:-\d+)?$", "", token.rstrip(TRAILING))
    token = re.sub(r":\d+(?:-\d+)?$", "", token.rstrip(TRAILING))
    return token.rstrip(TRAILING) if not token.endswith("/") else token


def slug(heading):
    """GitHub's anchor for a Markdown heading."""
    text = heading.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


class Repo:
    def __init__(self, root):
        self.root = root
        self.headings = {}

    def exists(self, rel):
        return os.path.exists(os.path.join(self.root, rel))

    def anchors(self, rel):
        if rel not in self.headings:
            found = set()
            counts = {}
            with open(os.path.join(self.root, rel), encoding="utf-8") as f:
                fence = False
                for line in f:
                    if line.startswith("```"):
                        fence = not fence
                    m = None if fence else re.match(r"#+\s+(.*)", line)
                    if m:
                        base = slug(m.group(1))
                        n = counts.get(base, 0)
                        counts[base] = n + 1
                        found.add(base if n == 0 else f"{base}-{n}")
                        found.add("\0" + m.group(1).strip())
            self.headings[rel] = found
        return self.headings[rel]

    def resolves(self, path, folder):
        """Whether `path`, cited in a file of `folder` (relative to the root), exists."""
        bare = path[2:] if path.startswith("./") else path
        candidates = [os.path.normpath(os.path.join(folder, path))]
        if path.startswith("../"):
            # ../lib/xmodal in an installed tree, ../scripts/test.sh from .ci/: named from the root
            candidates.append(UP.sub("", path))
        else:
            candidates.append(bare)
            candidates.append(os.path.join("lib", "xmodal", bare))
        return any(c and not c.startswith("..") and self.exists(c) for c in candidates)


def cited(token):
    """The path a token cites, or None when it is not a citation checked here."""
    path = clean(token)
    if not path or "://" in token or is_pattern(path):
        return None
    bare = path[2:] if path.startswith("./") else path
    if bare.startswith(IGNORED) and bare != "data/README.md" or bare.startswith("/"):
        return None
    if re.search(r"\.so(\.\d+)*$", bare):
        return None  # a shared library (lib/libc10.so inside LibTorch), never a file here
    if path.startswith("../"):
        rest = UP.sub("", path)
        # ../tiny.yaml, ../../etc/passwd: a test's made-up path; ../scripts/x.sh: a citation
        return path if rest.startswith(ROOTS) or rest.split("/")[0] in LAYERS else None
    if bare.startswith(ROOTS):
        return path
    first, _, rest = bare.partition("/")
    if first in LAYERS and re.search(r"\.(h|cpp|in)$", rest) and "/" not in rest:
        return path
    return None


def check_line(repo, rel, number, line, markdown, problems):
    folder = os.path.dirname(rel)
    where = f"{rel}:{number}"
    if BARE_DESIGN.search(line):
        problems.append(f"{where}: cites DESIGN.md: the design is docs/design.md")
    for m in SECTION.finditer(line):
        doc = "README.md" if m.group(1) == "README" else m.group(1)
        section = m.group(2)
        if doc == rel or is_pattern(section) or not repo.exists(doc):
            continue  # a missing file is reported as a path
        headings = [h[1:] for h in repo.anchors(doc) if h.startswith("\0")]
        if not any(section.lower() in h.lower() for h in headings):
            problems.append(f'{where}: {doc} "{section}": {doc} has no such section')
    links = []
    if markdown:
        for m in LINK.finditer(line):
            target = m.group(1)
            if "://" in target or target.startswith("mailto:"):
                continue
            links.append(target)
            file, _, anchor = target.partition("#")
            resolved = os.path.normpath(os.path.join(folder, file)) if file else rel
            if file and not repo.exists(resolved):
                problems.append(f"{where}: link to {target}: no such file")
            elif anchor and resolved.endswith(".md") and anchor not in repo.anchors(resolved):
                problems.append(f"{where}: link to {target}: no heading with that anchor")
    for m in PATH.finditer(line):
        token = m.group(1)
        if any(token == t or token == t.partition("#")[0] for t in links):
            continue  # a Markdown link's target, checked above
        path = cited(token.partition("#")[0])
        if path and not repo.resolves(path.rstrip("/") or path, folder):
            problems.append(f"{where}: {path} does not exist")


def files_to_scan(root):
    out = []
    for entry in MARKDOWN:
        path = os.path.join(root, entry)
        if os.path.isfile(path):
            out.append((entry, True))
        for dirpath, dirs, names in os.walk(path):
            dirs.sort()
            for name in sorted(names):
                if name.endswith(".md"):
                    out.append((os.path.relpath(os.path.join(dirpath, name), root), True))
    for entry in SOURCES:
        path = os.path.join(root, entry)
        if os.path.isfile(path):
            out.append((entry, False))
        for dirpath, dirs, names in os.walk(path):
            rel_dir = os.path.relpath(dirpath, root)
            dirs[:] = sorted(d for d in dirs if os.path.join(rel_dir, d) not in SKIP_DIRS)
            for name in sorted(names):
                rel = os.path.join(rel_dir, name)
                if rel in SKIP_FILES:
                    continue
                if name.endswith(SOURCE_SUFFIXES) or name in SOURCE_NAMES:
                    out.append((rel, name.endswith(".md")))
    return out


def main():
    root = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(
        os.path.dirname(os.path.abspath(__file__)), ".."))
    repo = Repo(root)
    problems = []
    scanned = files_to_scan(root)
    for rel, markdown in scanned:
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            for number, line in enumerate(f, 1):
                check_line(repo, rel, number, line, markdown, problems)
    for p in problems:
        print(p)
    print(f"paths: {len(scanned)} files, {len(problems)} problem(s)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
