#!/usr/bin/env python3
"""Makes tests/data/caption_metrics/: result sets scored by the official COCO caption
evaluation (pycocoevalcap 1.2 from PyPI, its Java PTBTokenizer included), for
tests/tasks/caption_metrics_test.cpp. Run it with a Python that has pycocoevalcap==1.2 and a
java on PATH (scripts/caption_reference_venv.sh makes one):

    $(scripts/caption_reference_venv.sh) scripts/make_caption_metric_fixtures.py

Result sets (each: references.json in COCO captions format, results.json, expected.json with
the official figures overall and per image, as pycocoevalcap's COCOEvalCap computes them with
params['image_id'] = the results' images):
  coco_leave_one_out  real COCO val2017 captions: each image's first caption scored against
                      its other four (../shared/fixtures/coco/annotations/captions_val2017.json)
  scenes_shifted      the scenes' test captions (data/fashion-scenes/dataset_scenes.json, made
                      by `xmodal data scenes`): each image's first caption scored against the
                      references of the image three places on, and of itself every 4th image
  edge_cases          hand-written candidates against COCO references: punctuation, clitics,
                      abbreviations, upper case, an empty caption, repeats, long and short ones
and ptb_tokenized.tsv: every caption above with the official tokenizer's output (raw TAB
tokenized), for the tokenizer's own test.
METEOR and SPICE are left out (xmodal does not provide them).
"""
import json
import os
import sys

from pycocoevalcap.bleu.bleu import Bleu
from pycocoevalcap.cider.cider import Cider
from pycocoevalcap.rouge.rouge import Rouge
from pycocoevalcap.tokenizer.ptbtokenizer import PTBTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "data", "caption_metrics")
COCO = os.path.join(ROOT, "..", "shared", "fixtures", "coco", "annotations", "captions_val2017.json")
SCENES = os.path.join(ROOT, "data", "fashion-scenes", "dataset_scenes.json")


def official(refs, results):
    """refs: {image_id: [caption]}, results: [(image_id, caption)] -> figures as COCOEvalCap."""
    ids = [i for i, _ in results]
    gts = {i: [{"caption": c} for c in refs[i]] for i in ids}
    res = {i: [{"caption": c}] for i, c in results}
    tok = PTBTokenizer()
    gts_t, res_t = tok.tokenize(gts), tok.tokenize(res)
    overall, per_image = {}, {i: {"image_id": i} for i in ids}
    for scorer, names in ((Bleu(4), ["Bleu_1", "Bleu_2", "Bleu_3", "Bleu_4"]),
                          (Rouge(), ["ROUGE_L"]), (Cider(), ["CIDEr"])):
        score, scores = scorer.compute_score(gts_t, res_t)
        if len(names) == 1:
            score, scores = [score], [scores]
        for name, s, ss in zip(names, score, scores):
            overall[name] = float(s)
            for i, v in zip(gts_t.keys(), ss):
                per_image[i][name] = float(v)
    tokenized = []
    for i, c in results:
        tokenized.append((c, res_t[i][0]))
    for i in ids:
        for c, t in zip(refs[i], gts_t[i]):
            tokenized.append((c, t))
    return {"overall": overall, "per_image": [per_image[i] for i in ids]}, tokenized


def write_set(name, refs, results, tsv):
    d = os.path.join(OUT, name)
    os.makedirs(d, exist_ok=True)
    ids = sorted({i for i, _ in results})
    anns, n = [], 0
    for i in ids:
        for c in refs[i]:
            n += 1
            anns.append({"image_id": i, "id": n, "caption": c})
    with open(os.path.join(d, "references.json"), "w") as f:
        json.dump({"images": [{"id": i} for i in ids], "annotations": anns}, f, indent=0)
    with open(os.path.join(d, "results.json"), "w") as f:
        json.dump([{"image_id": i, "caption": c} for i, c in results], f, indent=0)
    expected, tokenized = official(refs, results)
    with open(os.path.join(d, "expected.json"), "w") as f:
        json.dump(expected, f, indent=1)
    tsv.extend(tokenized)
    print(name, {k: round(v, 4) for k, v in expected["overall"].items()})


def main():
    tsv = []
    coco = json.load(open(COCO))
    caps = {}
    for a in coco["annotations"]:
        caps.setdefault(a["image_id"], []).append(a["caption"])
    ids = sorted(caps)
    write_set("coco_leave_one_out", {i: caps[i][1:] for i in ids},
              [(i, caps[i][0]) for i in ids], tsv)

    scenes = json.load(open(SCENES))
    test = [im for im in scenes["images"] if im["split"] == "test"][:150]
    srefs = {im["imgid"]: [s["raw"] for s in im["sentences"]] for im in test}
    sids = [im["imgid"] for im in test]
    results = []
    for k, i in enumerate(sids):
        source = i if k % 4 == 0 else sids[(k + 3) % len(sids)]
        results.append((i, srefs[source][0]))
    write_set("scenes_shifted", srefs, results, tsv)

    edge = [
        "A man's dog (brown) isn't \"happy\" -- it's 3.5 feet tall, 1,000 lbs & more...",
        "",
        "...",
        "A MAN RIDING A WAVE ON TOP OF A SURFBOARD.",
        "a a a a a a a a a a a a",
        "giraffe",
        "Two giraffes standing next to each other in a field, near trees; they're eating.",
        "Mr. Smith's t-shirt/hat: can't won't I'm we're you'll -- it's 10:30 p.m. in the U.S.",
        "A cat sitting on a sofa.A dog sleeps! Really?! [sic] {note} 50% $5 #1",
        "a person riding a horse on a beach near the ocean with a dog running behind "
        "them while the sun sets over the water and birds fly above the waves",
        "the the the of of and",
        "A bathroom with a toilet, sink and a mirror.",
        "“Smart” quotes – dashes — and an ellipsis… ½ cup",
        "cannot gonna wanna the 1990's dogs' bones o'clock",
    ]
    results = [(ids[k % len(ids)], c) for k, c in enumerate(edge)]
    write_set("edge_cases", {i: caps[i] for i in ids}, results, tsv)

    with open(os.path.join(OUT, "ptb_tokenized.tsv"), "w") as f:
        seen = set()
        for raw, tok in tsv:
            raw = raw.replace("\n", " ").replace("\t", " ")
            if raw not in seen:
                seen.add(raw)
                f.write(raw + "\t" + tok + "\n")


if __name__ == "__main__":
    sys.exit(main())
