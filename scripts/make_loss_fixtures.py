#!/usr/bin/python3
"""Writes tests/data/models/losses.safetensors: the task losses of docs/design.md section 3
computed by PyTorch, independently of xmodal, for tests/models/losses_test.cpp.

Run with Debian's Python (python3-torch 1.13):
    /usr/bin/python3 scripts/make_loss_fixtures.py [OUT_DIR]     # default tests/data/models

Every loss is a SUM over the samples of the batch (the trainer divides by the samples of a whole
accumulation group). Inputs are seeded random; for each loss the file holds its inputs, the
value ("<loss>.total", and for counting its parts) and the gradient of the total with respect
to the logits ("<loss>.grad.*"):
  vqa       BCE-with-logits against soft scores (0, 0.3, 0.6, 0.9, 1), summed over answers;
            checked here against ViLT / Hugging Face's form (mean BCE x number of answers x B)
  counting  presence BCE (target: count > 0, or a crowd region) averaged over categories, plus
            count cross-entropy (targets clamped to max_count) averaged over categories with the
            (image, category) pairs whose count is unknown (crowd) left out; weights 0.7 and
            1.3; written as loops over samples and categories, not as xmodal's tensor form
  classify  cross-entropy of class logits
  dense     per-patch BCE summed over categories, averaged over patches
  itc       CLIP's symmetric InfoNCE written as CLIP's paper pseudo-code (cross-entropy with
            arange labels both ways, halved), as a sum over pairs, on L2-normalised embeddings
            with a logit scale; and "itc_dup": the same batch where pairs 1 and 4 show the same
            image and pairs 2 and 5 the same text (positives spread evenly: ALBEF's soft
            targets), written as explicit loops
  itm       2-way cross-entropy, first B rows matching, mean over rows times B
  distill   knowledge distillation at temperature T = 2.5 (train.distill), each a sum over the
            samples times T^2, written with torch.nn.functional's own forms:
            sigmoid   F.binary_cross_entropy(sigmoid(s / T), sigmoid(t / T)) summed (vqa);
            softmax   F.kl_div(log_softmax(s / T), softmax(t / T), reduction="sum") (classify);
            counting  the two above for presence [B, C] and counts [B, C, K+1], each / C;
            similarity  KL of the rows of [B, N] text -> image logits plus (B / N) x KL of its
                      columns, halved (retrieval)
"""
import os
import sys

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_model_fixtures import ROOT, save_safetensors  # noqa: E402

PRESENCE_WEIGHT, COUNT_WEIGHT = 0.7, 1.3


def vqa(t):
    g = torch.Generator().manual_seed(1)
    logits = (torch.randn(5, 7, generator=g) * 2).requires_grad_()
    levels = torch.tensor([0.0, 0.3, 0.6, 0.9, 1.0])
    targets = levels[torch.randint(0, 5, (5, 7), generator=g)]
    total = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum()
    vilt = F.binary_cross_entropy_with_logits(logits, targets) * targets.shape[1] * 5
    assert torch.allclose(total, vilt), (total, vilt)
    total.backward()
    t.update({"vqa.logits": logits.detach(), "vqa.targets": targets, "vqa.total": total.detach(),
              "vqa.grad.logits": logits.grad})


def counting(t):
    g = torch.Generator().manual_seed(2)
    b, c, k = 4, 3, 5  # max_count 5: count classes 0..5
    presence = torch.randn(b, c, generator=g).requires_grad_()
    counts = torch.randn(b, c, k + 1, generator=g).requires_grad_()
    targets = torch.randint(0, 9, (b, c), generator=g)  # some above max_count
    targets[0, 0] = 0
    crowd = torch.rand(b, c, generator=g) < 0.3
    crowd[1, 2] = True
    presence_sum = torch.zeros(())
    count_sum = torch.zeros(())
    for i in range(b):
        bce, ce = torch.zeros(()), torch.zeros(())
        for j in range(c):
            n = min(int(targets[i, j]), k)
            present = 1.0 if (n > 0 or bool(crowd[i, j])) else 0.0
            bce = bce + F.binary_cross_entropy_with_logits(presence[i, j], torch.tensor(present))
            if not bool(crowd[i, j]):  # count unknown: no count loss
                ce = ce + F.cross_entropy(counts[i, j].unsqueeze(0), torch.tensor([n]))
        presence_sum = presence_sum + bce / c
        count_sum = count_sum + ce / c
    total = PRESENCE_WEIGHT * presence_sum + COUNT_WEIGHT * count_sum
    total.backward()
    t.update({"counting.presence": presence.detach(), "counting.counts": counts.detach(),
              "counting.targets": targets, "counting.crowd": crowd,
              "counting.weights": torch.tensor([PRESENCE_WEIGHT, COUNT_WEIGHT], dtype=torch.float64),
              "counting.total": total.detach(), "counting.presence_part": presence_sum.detach(),
              "counting.count_part": count_sum.detach(),
              "counting.grad.presence": presence.grad, "counting.grad.counts": counts.grad})


def classify(t):
    g = torch.Generator().manual_seed(3)
    logits = (torch.randn(6, 10, generator=g) * 3).requires_grad_()
    labels = torch.randint(0, 10, (6,), generator=g)
    total = F.cross_entropy(logits, labels, reduction="sum")
    total.backward()
    t.update({"classify.logits": logits.detach(), "classify.labels": labels,
              "classify.total": total.detach(), "classify.grad.logits": logits.grad})


def dense(t):
    g = torch.Generator().manual_seed(4)
    logits = torch.randn(2, 16, 3, generator=g).requires_grad_()
    targets = (torch.rand(2, 16, 3, generator=g) < 0.2).float()
    per_patch = F.binary_cross_entropy_with_logits(logits, targets, reduction="none").sum(2)
    total = per_patch.mean(1).sum()
    total.backward()
    t.update({"dense.logits": logits.detach(), "dense.targets": targets,
              "dense.total": total.detach(), "dense.grad.logits": logits.grad})


def itc(t):
    g = torch.Generator().manual_seed(5)
    b, e = 6, 4
    images = F.normalize(torch.randn(b, e, generator=g), dim=1).requires_grad_()
    texts = F.normalize(torch.randn(b, e, generator=g), dim=1).requires_grad_()
    scale = torch.tensor(1 / 0.07)
    logits = scale * images @ texts.t()
    labels = torch.arange(b)
    total = (F.cross_entropy(logits, labels, reduction="sum") +
             F.cross_entropy(logits.t(), labels, reduction="sum")) / 2
    total.backward()
    t.update({"itc.images": images.detach(), "itc.texts": texts.detach(), "itc.scale": scale,
              "itc.total": total.detach(), "itc.grad.images": images.grad,
              "itc.grad.texts": texts.grad})
    # duplicates: image keys and text keys
    image_keys = torch.tensor([0, 1, 2, 3, 1, 5])
    text_keys = torch.tensor([10, 11, 12, 13, 14, 12])
    im = images.detach().clone().requires_grad_()
    tx = texts.detach().clone().requires_grad_()
    logits = scale * im @ tx.t()
    total = torch.zeros(())
    for i in range(b):
        pos = [j for j in range(b) if image_keys[i] == image_keys[j] or text_keys[i] == text_keys[j]]
        target = torch.zeros(b)
        target[pos] = 1.0 / len(pos)
        i2t = -(target * F.log_softmax(logits[i], 0)).sum()
        t2i = -(target * F.log_softmax(logits[:, i], 0)).sum()
        total = total + (i2t + t2i) / 2
    total.backward()
    t.update({"itc_dup.image_keys": image_keys, "itc_dup.text_keys": text_keys,
              "itc_dup.total": total.detach(), "itc_dup.grad.images": im.grad,
              "itc_dup.grad.texts": tx.grad})


def itm(t):
    g = torch.Generator().manual_seed(6)
    b = 4
    logits = torch.randn(3 * b, 2, generator=g).requires_grad_()
    labels = torch.tensor([1] * b + [0] * (2 * b))
    total = F.cross_entropy(logits, labels) * b
    total.backward()
    t.update({"itm.logits": logits.detach(), "itm.total": total.detach(),
              "itm.grad.logits": logits.grad})


def distill(t):
    g = torch.Generator().manual_seed(7)
    temp = 2.5
    t2 = temp * temp

    def pair(*shape):
        s = (torch.randn(*shape, generator=g) * 2).requires_grad_()
        return s, torch.randn(*shape, generator=g) * 2

    def kl(s, te):  # sum over every distribution of the last dimension
        return F.kl_div(F.log_softmax(s / temp, -1), F.softmax(te / temp, -1), reduction="sum")

    s, te = pair(5, 7)
    total = F.binary_cross_entropy(torch.sigmoid(s / temp), torch.sigmoid(te / temp),
                                   reduction="sum") * t2
    total.backward()
    t.update({"distill.sigmoid.student": s.detach(), "distill.sigmoid.teacher": te,
              "distill.sigmoid.total": total.detach(), "distill.sigmoid.grad": s.grad})
    s, te = pair(6, 10)
    total = kl(s, te) * t2
    total.backward()
    t.update({"distill.softmax.student": s.detach(), "distill.softmax.teacher": te,
              "distill.softmax.total": total.detach(), "distill.softmax.grad": s.grad})
    (ps, pt), (cs, ct) = pair(4, 3), pair(4, 3, 6)
    c = 3
    total = (F.binary_cross_entropy(torch.sigmoid(ps / temp), torch.sigmoid(pt / temp),
                                    reduction="sum") + kl(cs, ct)) * t2 / c
    total.backward()
    t.update({"distill.counting.presence_student": ps.detach(),
              "distill.counting.presence_teacher": pt,
              "distill.counting.counts_student": cs.detach(), "distill.counting.counts_teacher": ct,
              "distill.counting.total": total.detach(),
              "distill.counting.grad.presence": ps.grad, "distill.counting.grad.counts": cs.grad})
    s, te = pair(6, 4)  # 6 texts, 4 distinct images
    total = (kl(s, te) + kl(s.t(), te.t()) * 6 / 4) / 2 * t2
    total.backward()
    t.update({"distill.similarity.student": s.detach(), "distill.similarity.teacher": te,
              "distill.similarity.total": total.detach(), "distill.similarity.grad": s.grad})
    t["distill.temperature"] = torch.tensor(temp, dtype=torch.float64)


if __name__ == "__main__":
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "models")
    tensors = {}
    for make in (vqa, counting, classify, dense, itc, itm, distill):
        make(tensors)
    save_safetensors(os.path.join(out_dir, "losses.safetensors"), tensors,
                     {"torch": torch.__version__, "script": "scripts/make_loss_fixtures.py"})
