#!/usr/bin/python3
"""The PyTorch (Python) peer of model_bench.cpp: the same fusion model built from stock parts.

Image side: torchvision's VisionTransformer (its conv-stem variant, ConvStemConfig, when the
config has `stem: conv`: 3x3 stride-2 conv + BatchNorm + GELU blocks, then a 1x1 conv).
Text side: BERT embeddings (word + position + type, LayerNorm) and nn.TransformerEncoder
(post-norm) layers. Fusion: nn.TransformerEncoder (pre-norm) over [CLS ; text ; image].
Heads and losses as xmodal's. Same sizes (--arch, printed by `xmodal_bench_model --mode arch`),
same batch, same synthetic data, same timing loop.

Modes: train (AdamW steps), infer (eval mode under torch.inference_mode(): nn.MultiheadAttention
and nn.TransformerEncoderLayer take PyTorch's fused fast path), matmul, predict (a fresh-process
prediction: load weights + decode an image + tokenize + forward + print JSON; for cold start).
"""
import argparse
import contextlib
import json
import resource
import sys
import time


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def build(a, torch, nn, torchvision):
    from torchvision.models.vision_transformer import ConvStemConfig

    class GELU(nn.GELU):  # torchvision's conv stem passes inplace=, which nn.GELU lacks
        def __init__(self, inplace=None):
            super().__init__()

    class Head(nn.Module):
        def __init__(self, d_in, hidden, out):
            super().__init__()
            self.fc1, self.norm = nn.Linear(d_in, hidden), nn.LayerNorm(hidden, eps=1e-6)
            self.fc2 = nn.Linear(hidden, out)

        def forward(self, x):
            return self.fc2(nn.functional.gelu(self.norm(self.fc1(x))))

    class Peer(nn.Module):
        def __init__(self):
            super().__init__()
            dv, dt, d = a["vision_hidden"], a["text_hidden"], a["fusion_hidden"]
            stem = None
            if a["stem"] == "conv":
                stem, width, size = [], a["stem_width"], 1
                while size < a["patch"]:
                    stem.append(ConvStemConfig(min(width, dv), 3, 2, activation_layer=GELU))
                    width, size = width * 2, size * 2
            self.vit = torchvision.models.VisionTransformer(
                image_size=a["image"], patch_size=a["patch"], num_layers=a["vision_layers"],
                num_heads=a["vision_heads"], hidden_dim=dv, mlp_dim=a["vision_mlp"],
                conv_stem_configs=stem)
            self.vit.heads = None
            self.word = nn.Embedding(a["vocab"], dt)
            self.position = nn.Embedding(a["text_len"], dt)
            self.token_type = nn.Embedding(2, dt)
            self.text_norm = nn.LayerNorm(dt, eps=1e-12)
            self.text = None
            if a["text_layers"] > 0:
                self.text = nn.TransformerEncoder(nn.TransformerEncoderLayer(
                    dt, a["text_heads"], a["text_mlp"], dropout=0.0, activation="gelu",
                    batch_first=True, norm_first=False, layer_norm_eps=1e-12), a["text_layers"])
            self.text_proj, self.image_proj = nn.Linear(dt, d), nn.Linear(dv, d)
            self.type_embedding = nn.Embedding(2, d)
            self.cls = nn.Parameter(torch.zeros(1, 1, d))
            self.fusion = nn.TransformerEncoder(
                nn.TransformerEncoderLayer(d, a["fusion_heads"], a["fusion_mlp"], dropout=0.0,
                                           activation="gelu", batch_first=True, norm_first=True,
                                           layer_norm_eps=1e-6),
                a["fusion_layers"], norm=nn.LayerNorm(d, eps=1e-6), enable_nested_tensor=False)
            self.pooler = nn.Linear(d, d)
            self.head = Head(d, a["head_hidden"], a["classes"])
            n, k = a["aux"], a["max_count"] + 1
            self.aux_counting = Head(dv, a["head_hidden"], n * (1 + k)) if a["aux_counting"] else None
            self.aux_dense = nn.Linear(dv, n) if a["aux_dense"] else None

        def forward(self, images, ids, mask, types):
            v = self.vit
            x = v._process_input(images)
            x = torch.cat([v.class_token.expand(x.shape[0], -1, -1), x], dim=1)
            image = v.encoder(x)  # [B, 1 + P, Dv], after its final LayerNorm
            positions = torch.arange(ids.shape[1])
            text = self.text_norm(self.word(ids) + self.position(positions) + self.token_type(types))
            padding = mask.eq(0)
            if self.text is not None:
                text = self.text(text, src_key_padding_mask=padding)
            batch = ids.shape[0]
            x = torch.cat([self.cls.expand(batch, -1, -1),
                           self.text_proj(text) + self.type_embedding.weight[0],
                           self.image_proj(image) + self.type_embedding.weight[1]], 1)
            no_pad = torch.zeros(batch, 1, dtype=torch.bool)
            full = torch.cat([no_pad, padding, no_pad.expand(batch, image.shape[1])], 1)
            x = self.fusion(x, src_key_padding_mask=full)
            logits = self.head(torch.tanh(self.pooler(x[:, 0])))
            patches = image[:, 1:]
            aux = self.aux_counting(patches.mean(1)) if self.aux_counting is not None else None
            dense = self.aux_dense(patches) if self.aux_dense is not None else None
            return logits, aux, dense

    return Peer()


def make_batch(torch, a, batch):
    image, length = a["image"], a["text_len"]
    grid = image // a["patch"]
    images = torch.randn(batch, 3, image, image)
    ids = torch.randint(1, a["vocab"], (batch, length))
    lengths = torch.arange(batch).remainder(9).add(4).unsqueeze(1)
    mask = torch.arange(length).unsqueeze(0).lt(lengths).long()
    ids = ids * mask
    targets = torch.rand(batch, a["classes"]).lt(0.05).float()
    aux_counts = torch.randint(0, 4, (batch, a["aux"]))
    aux_dense = torch.rand(batch, grid * grid, a["aux"]).lt(0.1).float()
    return images, ids, mask, torch.zeros_like(ids), targets, aux_counts, aux_dense


def loss_of(torch, a, out, targets, aux_counts, aux_dense):
    F = torch.nn.functional
    logits, aux, dense = out
    loss = F.binary_cross_entropy_with_logits(logits, targets, reduction="sum")
    n, k = a["aux"], a["max_count"] + 1
    if aux is not None:  # presence BCE + count cross-entropy, per category (xmodal's counting_loss)
        presence, counts = aux[:, :n], aux[:, n:].reshape(-1, n, k)
        clamped = aux_counts.clamp(0, k - 1)
        bce = F.binary_cross_entropy_with_logits(presence, (clamped > 0).float(), reduction="sum")
        ce = F.cross_entropy(counts.reshape(-1, k), clamped.reshape(-1), reduction="sum")
        loss = loss + (bce + ce) / n * a["aux_counting"]
    if dense is not None:
        bce = F.binary_cross_entropy_with_logits(dense, aux_dense, reduction="none")
        loss = loss + bce.sum(2).mean(1).sum() * a["aux_dense"]
    return loss


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True, help="JSON from xmodal_bench_model --mode arch")
    p.add_argument("--mode", default="train")
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--n", type=int, default=2048)
    p.add_argument("--label", default="pytorch")
    p.add_argument("--bf16", action="store_true",
                   help="the forward pass under torch.autocast('cpu', torch.bfloat16)")
    p.add_argument("--compile", action="store_true",
                   help="torch.compile the model (inductor; the first steps compile and are not timed)")
    p.add_argument("--weights", help="predict: the state dict to load (train mode saves it)")
    p.add_argument("--image-file", help="predict: an image file")
    p.add_argument("--question", default="how many shirts are there")
    a = p.parse_args()
    arch = json.loads(a.arch)

    import torch
    from torch import nn
    import torchvision
    if a.threads:
        torch.set_num_threads(a.threads)
    threads = torch.get_num_threads()
    torch.manual_seed(0)
    info = {"impl": a.label, "mode": a.mode, "threads": threads, "batch": a.batch}

    if a.mode == "matmul":
        dtype = torch.bfloat16 if a.bf16 else torch.float32
        x, y = torch.randn(a.n, a.n, dtype=dtype), torch.randn(a.n, a.n, dtype=dtype)
        c = torch.mm(x, y)
        best, start, repeats = 0.0, time.perf_counter(), 0
        while repeats < 3 or time.perf_counter() - start < a.seconds:
            t0 = time.perf_counter()
            torch.mm(x, y, out=c)
            best = max(best, 2.0 * a.n ** 3 / (time.perf_counter() - t0) / 1e9)
            repeats += 1
        print(json.dumps({**info, "n": a.n, "gflops": round(best, 1)}))
        return

    module = build(arch, torch, nn, torchvision)
    model = torch.compile(module) if a.compile else module
    info["compiled"] = a.compile
    info["bf16"] = a.bf16
    autocast = (lambda: torch.autocast("cpu", dtype=torch.bfloat16)) if a.bf16 else contextlib.nullcontext
    info["torch"] = torch.__version__
    if a.mode == "predict":  # what a user's Python prediction script does, from a cold start
        from torchvision.io import ImageReadMode, read_image
        module.load_state_dict(torch.load(a.weights))
        model.eval()
        image = read_image(a.image_file, ImageReadMode.RGB).float().div(255)
        image = nn.functional.interpolate(image.unsqueeze(0), size=(arch["image"], arch["image"]),
                                          mode="bilinear", align_corners=False)
        image = (image - 0.5) / 0.5
        words = a.question.lower().split()
        ids = torch.zeros(1, arch["text_len"], dtype=torch.long)
        ids[0, :len(words)] = torch.tensor([1 + hash(w) % (arch["vocab"] - 1) for w in words])
        mask = ids.ne(0).long()
        with torch.inference_mode():
            logits = model(image, ids, mask, torch.zeros_like(ids))[0].sigmoid()[0]
        top = torch.topk(logits, 3)
        print(json.dumps({"answers": [{"answer": str(int(i)), "score": float(s)}
                                      for s, i in zip(top.values, top.indices)],
                          "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    images, ids, mask, types, targets, aux_counts, aux_dense = make_batch(torch, arch, a.batch)
    if a.mode == "train":
        model.train()
        decay = [q for n, q in module.named_parameters() if q.dim() >= 2 and "embedding" not in n]
        no_decay = [q for n, q in module.named_parameters() if not (q.dim() >= 2 and "embedding" not in n)]
        optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": 0.01},
                                       {"params": no_decay, "weight_decay": 0.0}], lr=1e-4)
        params = list(module.parameters())
        phases = {"forward_ms": [], "backward_ms": [], "update_ms": []}

        def step():
            t0 = time.perf_counter()
            with autocast():
                out = model(images, ids, mask, types)
            loss = loss_of(torch, arch, tuple(o.float() if o is not None else None for o in out),
                           targets, aux_counts, aux_dense)
            value = loss.item()
            t1 = time.perf_counter()
            (loss / a.batch).backward()
            t2 = time.perf_counter()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            t3 = time.perf_counter()
            for key, ms in zip(phases, (t1 - t0, t2 - t1, t3 - t2)):
                phases[key].append(ms * 1e3)
            return value

        for _ in range(3):
            step()
        for values in phases.values():
            values.clear()
        steps, start = 0, time.perf_counter()
        while steps < 5 or time.perf_counter() - start < a.seconds:
            step()
            steps += 1
        sps = steps * a.batch / (time.perf_counter() - start)
        if a.weights:
            torch.save(module.state_dict(), a.weights)
        medians = {k: round(sorted(v)[len(v) // 2], 1) for k, v in phases.items()}
        print(json.dumps({**info, "steps": steps, "train_sps": round(sps, 1), **medians,
                          "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return

    if a.mode == "infer":
        model.eval()
        one = make_batch(torch, arch, 1)

        def forward(images, ids, mask, types):
            with torch.inference_mode(), autocast():
                return model(images, ids, mask, types)[0].float().sigmoid()

        for _ in range(3):
            forward(images, ids, mask, types)
        runs, start = 0, time.perf_counter()
        while runs < 5 or time.perf_counter() - start < a.seconds:
            forward(images, ids, mask, types)
            runs += 1
        sps = runs * a.batch / (time.perf_counter() - start)
        for _ in range(5):
            forward(*one[:4])
        latencies, start = [], time.perf_counter()
        while len(latencies) < 20 or time.perf_counter() - start < a.seconds / 2:
            t0 = time.perf_counter()
            forward(*one[:4])
            latencies.append((time.perf_counter() - t0) * 1e3)
        latencies.sort()
        print(json.dumps({**info, "infer_sps": round(sps, 1),
                          "latency_ms": round(latencies[len(latencies) // 2], 3),
                          "peak_rss_mb": round(peak_rss_mb(), 1)}))
        return
    sys.exit(f"model_bench.py: unknown --mode {a.mode}")


if __name__ == "__main__":
    main()
