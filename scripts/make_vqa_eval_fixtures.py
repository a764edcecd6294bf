#!/usr/bin/python3
"""Reference figures for the VQA accuracy metric, computed by the official VQA
evaluation code itself (GT-Vision-Lab/VQA), for two versions of it:

  official  a013f0043c1e2cdc995922dfe257f7149aa9af06  (master, 2021-03-11,
            "Fixed processing answers bug")
  legacy    its parent a4f1afd59cfda2f1a7f7f720f40bfea2e338c6ad (2017-10-02,
            "updated for v2.0"); a013f00 changes only vqaEval.py, so vqa.py is
            the same blob in both.

Files used from the repository, extracted with `git show COMMIT:PATH` into a
temporary folder:
  PythonHelperTools/vqaTools/vqa.py               (class VQA, loadRes)
  PythonEvaluationTools/vqaEvaluation/vqaEval.py  (class VQAEval)

The upstream code is Python 2.  The ONLY textual changes made so that Python 3
can import it (each one is recorded in expected.json "source.py3_changes"):
  1. print statements -> print() calls: every line matching
        ^(\\s*)print (.+?)\\s*$    becomes    \\1print(\\2)
     (9 lines in vqa.py, 2 in each vqaEval.py; none is inside a string).
  2. vqa.py only: Python 3 rejects indentation whose meaning depends on the tab
     size (TabError).  On each line that Python 3 reports (compile, fix the
     reported line, repeat), the 1-7 spaces that precede the first tab of the
     indentation are deleted.  Under Python 2's tab size 8 those spaces are
     swallowed by the tab, so the indentation level is unchanged.  This hits
     lines 49, 52, 60, 62, 92 of vqa.py; the other lines that start with
     spaces before a tab (26 in a docstring, 56, 59 a comment, 90) are
     accepted by Python 3 and left as they are.
Nothing else is changed; sys.stdout.write/flush in updateProgress works as is,
and all divisions in the code are already float divisions (float(...)/3,
100*float(sum)/len, step/float(len)).  The progress bar and the prints are
captured (contextlib.redirect_stdout), not edited.

Python 2 vs 3 behaviour that could differ and is checked here, not patched:
  * round(): Python 2.7 rounds exact halves away from zero, Python 3 to even.
    Only an exact binary tie can differ; the builtin round is wrapped (in the
    module namespace, not in its text) to detect ties; a tie is recorded in the
    case as "roundingTies" (field, unrounded value, Python 3 and Python 2
    results); the published figure is the Python 3 one.
  * str vs unicode: Python 2's json gives unicode; the regexes (compiled from
    byte strings without re.UNICODE) then match \\d = [0-9] only, and
    lower()/split()/strip() act on Unicode.  Python 3's \\d also matches
    non-ASCII digits.  The script asserts that every answer (human and
    predicted) is ASCII, where both behave alike.

Annotations: real VQA v2 annotations (first 100 of val2014 / train2014, from
Minyus/awesome-dataset-annotations).  No matching questions file exists, so one
is synthesized with the same question_id/image_id pairs and the header fields
vqa.py's loadRes copies (info, task_type, data_type, data_subtype, license);
the question text is left empty: the evaluation never reads it.

Prediction sets (deterministic, fixed seeds), each a results file in the
official format [{"question_id": int, "answer": str}, ...]:
  majority   multiple_choice_answer of each question
  perturbed  majority answer changed only in case, articles, trailing periods,
             number words <-> digits, punctuation/commas, surrounding or inner
             whitespace (tabs, newlines), or a combination of two of those; the
             kinds are cycled separately over questions whose ten human answers
             are all identical and over those where they differ
  random     drawn from the multiset of all human answers in the file
  humans     one of the question's own ten raw human answers

Usage (from the repository root):
  /usr/bin/python3 scripts/make_vqa_eval_fixtures.py \\
      --vqa-git /work/.mirror/GT-Vision-Lab+VQA/repo --out tests/data/vqa/official_eval
--vqa-git may also be a normal checkout of https://github.com/GT-Vision-Lab/VQA
(full history needed for both commits).  Stdlib only.
"""

import argparse
import contextlib
import decimal
import importlib.util
import io
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import warnings

OFFICIAL = "a013f0043c1e2cdc995922dfe257f7149aa9af06"
LEGACY_EXPECTED = "a4f1afd59cfda2f1a7f7f720f40bfea2e338c6ad"
VQA_PY = "PythonHelperTools/vqaTools/vqa.py"
EVAL_PY = "PythonEvaluationTools/vqaEvaluation/vqaEval.py"
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

VAL_ANN = "tests/data/vqa/minyus_v2_mscoco_val2014_annotations_first100.json"
TRAIN_ANN_NAME = "minyus_v2_mscoco_train2014_annotations_first100.json"
TRAIN_ANN_SRC = "/work/shared/fixtures/vqa/" + TRAIN_ANN_NAME

SEEDS = {"perturbed": 20210311, "random": 20210312, "humans": 20210313}


# --------------------------------------------------------------------------
# git access
# --------------------------------------------------------------------------
def git_cmd(path):
    if os.path.exists(os.path.join(path, ".git")):
        return ["git", "-C", path]
    return ["git", "--git-dir", path]


def git(base, *args):
    return subprocess.run(base + list(args), check=True, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE).stdout.decode("utf-8")


def commit_info(base, rev):
    h, parents, date, subject = git(base, "show", "-s", "--format=%H%n%P%n%aI%n%s", rev).split("\n")[:4]
    return {"commit": h, "parents": parents.split(), "date": date, "subject": subject}


# --------------------------------------------------------------------------
# Python 2 -> 3 (print statements + TabError lines only)
# --------------------------------------------------------------------------
PRINT_RE = re.compile(r"^(\s*)print (.+?)\s*$")


def py3ify(src, label, changes):
    """Return src with the two Python-3 fixes; append one record per changed line to changes."""
    lines = src.split("\n")
    for i, line in enumerate(lines):
        m = PRINT_RE.match(line)
        if m:
            new = "%sprint(%s)" % (m.group(1), m.group(2))
            changes.append({"file": label, "line": i + 1, "kind": "print", "before": line, "after": new})
            lines[i] = new
    for _ in range(len(lines)):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # "\d" in non-raw strings: a warning only
                compile("\n".join(lines), label, "exec")
            break
        except TabError as e:
            i = e.lineno - 1
            new = re.sub(r"^( {1,7})\t", "\t", lines[i])
            if new == lines[i]:
                raise
            changes.append({"file": label, "line": i + 1, "kind": "tab", "before": lines[i], "after": new})
            lines[i] = new
    return "\n".join(lines)


TIES = []


def py2_round(x, n):
    """Python 2.7 round(): exact value, halves away from zero."""
    q = decimal.Decimal(1).scaleb(-n)
    return float(decimal.Decimal(x).quantize(q, rounding=decimal.ROUND_HALF_UP))


def checking_round(x, n=None):
    """builtins.round, plus detection of exact halves, where Python 2 and 3 differ.

    The field being rounded is read from the caller's frame (setAccuracy's
    comprehension variables quesType/ansType, or setEval*'s quesId)."""
    r = round(x) if n is None else round(x, n)
    if n is not None and isinstance(x, float):
        frac = (decimal.Decimal(x) * (decimal.Decimal(10) ** n)) % 1
        if abs(frac) == decimal.Decimal("0.5"):
            f = sys._getframe(1)
            loc = f.f_locals
            if "quesType" in loc and f.f_code.co_name == "<dictcomp>":
                field = "perQuestionType/" + loc["quesType"]
            elif "ansType" in loc and f.f_code.co_name == "<dictcomp>":
                field = "perAnswerType/" + loc["ansType"]
            elif f.f_code.co_name == "setAccuracy":
                field = "overall"
            else:
                field = "%s/%s" % (f.f_code.co_name, loc.get("quesId"))
            TIES.append({"field": field, "unrounded": x, "python3_round": r, "python2_round": py2_round(x, n)})
    return r


def load_module(path, name):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        spec.loader.exec_module(mod)
    mod.round = checking_round  # instrumentation only: same results as builtins.round
    return mod


# --------------------------------------------------------------------------
# inputs
# --------------------------------------------------------------------------
def rel(path):
    return os.path.relpath(os.path.abspath(path), ROOT).replace(os.sep, "/")


def write_json_lines(path, items):
    """A JSON list, one compact element per line (small, diff-friendly)."""
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write("[\n" + ",\n".join(json.dumps(x) for x in items) + "\n]\n")


def synth_questions(ann, path):
    q = {
        "info": ann["info"],
        "task_type": "Open-Ended",
        "data_type": ann["data_type"],
        "license": ann["license"],
        "data_subtype": ann["data_subtype"],
        "xmodal_note": "synthesized by scripts/make_vqa_eval_fixtures.py: question_id/image_id of the "
                       "annotation file, question text omitted (not read by the VQA evaluation)",
        "questions": [{"image_id": a["image_id"], "question": "", "question_id": a["question_id"]}
                      for a in ann["annotations"]],
    }
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.write(json.dumps({k: v for k, v in q.items() if k != "questions"}, indent=1)[:-2])
        f.write(',\n "questions": [\n' + ",\n".join(json.dumps(x) for x in q["questions"]) + "\n ]\n}\n")


DIGITS = {"0": "zero", "1": "one", "2": "two", "3": "three", "4": "four", "5": "five",
          "6": "six", "7": "seven", "8": "eight", "9": "nine", "10": "ten"}
WORDS = {v: k for k, v in DIGITS.items()}


def perturb(kind, b, rng):
    """Return the perturbed answer, or None if the kind does not apply to b."""
    if kind == "case":
        if not any(c.isalpha() for c in b):
            return None
        return rng.choice([b.capitalize(), b.upper(), b.title()])
    if kind == "article":
        return rng.choice(["a ", "the ", "an ", "A ", "The "]) + b
    if kind == "period":
        return rng.choice([b + ".", b + ". ", b + ".."])
    if kind == "numword":
        if b in DIGITS:
            return rng.choice([DIGITS[b], DIGITS[b].capitalize()])
        if b in WORDS:
            return WORDS[b]
        return None
    if kind == "punct":
        return rng.choice(['"{}"', "{}!", "{}?", "({})", "{};", "{} ?", "-{}-", "{}/"]).format(b)
    if kind == "comma":
        if ", " in b:
            return rng.choice([b.replace(", ", " "), b.replace(", ", ","), b.replace(", ", " , ")])
        if " " in b:
            return rng.choice([b.replace(" ", ", "), b.replace(" ", ",")])
        if b.isdigit():
            return rng.choice([b + ",0", "1," + b, b + ","])
        return rng.choice([b + ",", "," + b, b + " ,"])
    if kind == "whitespace":
        if " " in b and rng.random() < 0.5:
            return b.replace(" ", rng.choice(["  ", "\t", " \n "]))
        return rng.choice(["  {} ", "\t{}", "{}\n", "\n {}\t ", " {}"]).format(b)
    raise ValueError(kind)


KINDS = ["case", "article", "period", "numword", "punct", "comma", "whitespace", "combo", "none"]


def make_perturbed(anns, rng):
    counters = {True: 0, False: 0}
    out = []
    for a in anns:
        b = a["multiple_choice_answer"]
        same = len(set(x["answer"] for x in a["answers"])) == 1
        if (b in DIGITS or b in WORDS) and rng.random() < 0.5:
            kind = "numword"
        else:
            while True:
                kind = KINDS[counters[same] % len(KINDS)]
                counters[same] += 1
                if kind in ("combo", "none") or perturb(kind, b, random.Random(0)) is not None:
                    break
        if kind == "none":
            ans = b
        elif kind == "combo":
            ks = [k for k in KINDS[:7] if perturb(k, b, random.Random(0)) is not None]
            k1, k2 = rng.sample(ks, 2)
            ans = perturb(k2, perturb(k1, b, rng), rng)
        else:
            ans = perturb(kind, b, rng)
        out.append({"question_id": a["question_id"], "answer": ans})
    return out


def make_sets(ann):
    anns = ann["annotations"]
    pool = [x["answer"] for a in anns for x in a["answers"]]
    r_rand, r_hum = random.Random(SEEDS["random"]), random.Random(SEEDS["humans"])
    return {
        "majority": [{"question_id": a["question_id"], "answer": a["multiple_choice_answer"]} for a in anns],
        "perturbed": make_perturbed(anns, random.Random(SEEDS["perturbed"])),
        "random": [{"question_id": a["question_id"], "answer": r_rand.choice(pool)} for a in anns],
        "humans": [{"question_id": a["question_id"], "answer": r_hum.choice(a["answers"])["answer"]}
                   for a in anns],
    }


# --------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------
def evaluate(mods, ann_path, ques_path, res_path, twice=False):
    vqa_mod, eval_mod = mods
    del TIES[:]
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        vqa = vqa_mod.VQA(ann_path, ques_path)
        vqa_res = vqa.loadRes(res_path, ques_path)
        ev = eval_mod.VQAEval(vqa, vqa_res, n=2)
        ev.evaluate()
        first = (dict(ev.accuracy), dict(ev.evalQA), list(TIES))
        second = None
        if twice:  # same objects again: gts were normalized in place by the first call
            ev.evaluate()
            second = (dict(ev.accuracy), dict(ev.evalQA))
    return first, second


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--vqa-git", required=True, help="bare git dir or checkout of GT-Vision-Lab/VQA")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/vqa/official_eval"))
    ap.add_argument("--train-src", default=TRAIN_ANN_SRC,
                    help="train first100 annotations, copied into --out if not there yet")
    args = ap.parse_args()
    out = args.out
    os.makedirs(out, exist_ok=True)

    base = git_cmd(args.vqa_git)
    off = commit_info(base, OFFICIAL)
    parent = git(base, "rev-parse", OFFICIAL + "^").strip()
    assert parent == LEGACY_EXPECTED, parent
    leg = commit_info(base, parent)
    changed = git(base, "diff", "--name-only", parent, OFFICIAL).split()
    assert changed == [EVAL_PY], changed
    for info in (off, leg):
        info["blobs"] = {p: git(base, "rev-parse", "%s:%s" % (info["commit"], p)).strip() for p in (VQA_PY, EVAL_PY)}

    changes = []
    mods = {}
    with tempfile.TemporaryDirectory(prefix="vqa_eval_") as tmp:
        for proto, info in (("official", off), ("legacy", leg)):
            d = os.path.join(tmp, proto)
            os.makedirs(d)
            paths = []
            for p in (VQA_PY, EVAL_PY):
                src = git(base, "show", "%s:%s" % (info["commit"], p))
                label = "%s@%s" % (p, info["blobs"][p][:7])  # vqa.py: one blob for both commits
                dst = py3ify(src, label, [] if any(c["file"] == label for c in changes) else changes)
                fp = os.path.join(d, os.path.basename(p))
                with open(fp, "w", encoding="utf-8") as f:
                    f.write(dst)
                paths.append(fp)
            mods[proto] = (load_module(paths[0], "vqa_" + proto), load_module(paths[1], "vqaEval_" + proto))

        # ---------------- inputs
        train_dst = os.path.join(out, TRAIN_ANN_NAME)
        if not os.path.exists(train_dst):
            shutil.copyfile(args.train_src, train_dst)
        splits = [("val", os.path.join(ROOT, VAL_ANN)), ("train", train_dst)]

        cases = []
        summary = []
        for split, ann_path in splits:
            with open(ann_path, encoding="utf-8") as f:
                ann = json.load(f)
            for a in ann["annotations"]:
                assert all(x["answer"].isascii() for x in a["answers"]), a["question_id"]
            ques_path = os.path.join(out, "questions_%s_synth.json" % split)
            synth_questions(ann, ques_path)
            for name, preds in make_sets(ann).items():
                assert all(p["answer"].isascii() for p in preds)
                res_path = os.path.join(out, "results_%s_%s.json" % (split, name))
                write_json_lines(res_path, preds)
                for proto in ("official", "legacy"):
                    (acc, evalqa, ties), second = evaluate(mods[proto], ann_path, ques_path, res_path,
                                                     twice=(name == "perturbed"))
                    cases.append({
                        "split": split,
                        "predictions": name,
                        "annotations": rel(ann_path),
                        "questions": rel(ques_path),
                        "results": rel(res_path),
                        "protocol": proto,
                        "overall": acc["overall"],
                        "perAnswerType": dict(sorted(acc["perAnswerType"].items())),
                        "perQuestionType": dict(sorted(acc["perQuestionType"].items())),
                        "evalQA": {str(q): v for q, v in evalqa.items()},
                    })
                    if ties:
                        cases[-1]["roundingTies"] = ties
                    note = ""
                    if second is not None and second[0]["overall"] != acc["overall"]:
                        note = "2nd evaluate() on same objects: %.2f" % second[0]["overall"]
                    for t in ties:
                        note += " tie %s: py3 %s / py2 %s" % (t["field"], t["python3_round"], t["python2_round"])
                    summary.append((split, name, proto, acc["overall"], note))

    data = {
        "source": {
            "repo": "https://github.com/GT-Vision-Lab/VQA",
            "files": [VQA_PY, EVAL_PY],
            "official": off,
            "legacy": leg,
            "py3_changes": changes,
            "generator": "/usr/bin/python3 scripts/make_vqa_eval_fixtures.py --vqa-git <GT-Vision-Lab/VQA git dir> "
                         "--out tests/data/vqa/official_eval",
            "python": sys.version.split()[0],
            "n": 2,
            "seeds": SEEDS,
        },
        "cases": cases,
    }
    with open(os.path.join(out, "expected.json"), "w", encoding="ascii", newline="\n") as f:
        src = data["source"]
        f.write('{\n"source": {\n' + ",\n".join(
            " %s: %s" % (json.dumps(k), json.dumps(v) if k != "py3_changes" else
                         "[\n" + ",\n".join("  " + json.dumps(c) for c in v) + "\n ]")
            for k, v in src.items()) + '\n},\n"cases": [\n')
        parts = []
        for c in cases:
            parts.append("{\n" + ",\n".join(" %s: %s" % (json.dumps(k), json.dumps(v)) for k, v in c.items()) + "\n}")
        f.write(",\n".join(parts) + "\n]\n}\n")

    # ---------------- report
    print("%-6s %-10s %-9s %8s" % ("split", "preds", "protocol", "overall"))
    for s in summary:
        print("%-6s %-10s %-9s %8.2f  %s" % s)
    by = {(c["split"], c["predictions"], c["protocol"]): c for c in cases}
    for split, _ in splits:
        for name in ("majority", "perturbed", "random", "humans"):
            o, l = by[(split, name, "official")], by[(split, name, "legacy")]
            diff = [q for q in o["evalQA"] if o["evalQA"][q] != l["evalQA"][q]]
            print("%s/%s: official %s legacy overall; %d questions differ%s" % (
                split, name, "==" if o["overall"] == l["overall"] else "!=", len(diff),
                (": " + ", ".join("%s (%s vs %s)" % (q, o["evalQA"][q], l["evalQA"][q]) for q in diff[:8])) if diff else ""))
    print("textual changes to upstream code: %d" % len(changes))


if __name__ == "__main__":
    main()
