#!/usr/bin/env python3
"""The best a text-only model can do on the scenes' counting task.

For each category, the count is predicted from the phrase that names the category in the
caption ("some bags", "at least one coat", or no phrase), as the most frequent training count
for that (category, phrase): the Bayes-optimal text-only prediction per (image, category).
Prints its count accuracy per (image, category), exact match of the whole count vector and MAE
on a split, next to the all-zeros baseline. Standard library only.

    python3 scripts/counting_text_prior.py [--root data/fashion-scenes] [--split test]
"""
import argparse
import collections
import json
import re

QUANTITIES = ["at least one", "one or two", "a few", "some", "several", "many",  # partial
              "an", "a"]  # full captions: "a bag" (their digits and number words: see below)
NUMBERS = {w: i for i, w in enumerate(
    ["no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"])}


def load(root, split):
    with open(f"{root}/annotations/instances_{split}.json") as f:
        inst = json.load(f)
    with open(f"{root}/annotations/captions_{split}.json") as f:
        caps = json.load(f)
    cats = sorted(inst["categories"], key=lambda c: c["id"])
    index = {c["id"]: i for i, c in enumerate(cats)}
    counts = collections.defaultdict(lambda: [0] * len(cats))
    for a in inst["annotations"]:
        counts[a["image_id"]][index[a["category_id"]]] += 1
    texts = collections.defaultdict(list)
    for a in caps["annotations"]:
        texts[a["image_id"]].append(a["caption"])
    for image in inst["images"]:
        counts[image["id"]]  # images without articles count too
    return [c["name"] for c in cats], counts, texts


def plural(name):
    if name.endswith("ss"):
        return name + "es"  # dress
    return name if name.endswith("s") else name + "s"  # trousers


def phrase(caption, name):
    """The quantity word naming `name` in the caption, or None."""
    nouns = "|".join(re.escape(n) for n in {name, plural(name)})
    words = "|".join(re.escape(q) for q in QUANTITIES + list(NUMBERS) + [str(i) for i in range(11)])
    m = re.search(rf"(?:^| )({words}) (?:{nouns})(?=[ .,])", caption)
    return m.group(1) if m else None


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--root", default="data/fashion-scenes")
    p.add_argument("--split", default="test")
    a = p.parse_args()
    names, counts, texts = load(a.root, "train")
    table = collections.defaultdict(collections.Counter)
    for image, caps in texts.items():
        for cap in caps:
            for c, name in enumerate(names):
                table[(c, phrase(cap, name))][counts[image][c]] += 1
    best = {k: v.most_common(1)[0][0] for k, v in table.items()}
    names, counts, texts = load(a.root, a.split)
    right = total = exact = samples = 0
    error = 0
    for image, caps in texts.items():
        for cap in caps:  # every caption once: the loader draws one of them per sample
            whole = True
            for c, name in enumerate(names):
                guess, truth = best.get((c, phrase(cap, name)), 0), counts[image][c]
                right += guess == truth
                error += abs(guess - truth)
                whole &= guess == truth
                total += 1
            exact += whole
            samples += 1
    zeros = sum(n == 0 for v in counts.values() for n in v) / sum(len(v) for v in counts.values())
    print(f"{a.root} {a.split}: text-only Bayes count accuracy {100 * right / total:.2f}%, "
          f"exact match {100 * exact / samples:.2f}%, MAE {error / total:.3f} "
          f"({samples} captions); all-zeros count accuracy {100 * zeros:.2f}%")


if __name__ == "__main__":
    main()
