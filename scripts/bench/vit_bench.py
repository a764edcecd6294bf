#!/usr/bin/python3
"""torchvision VisionTransformer throughput, the peer of vit_bench.cpp (same sizes, same timing).

Times the image encoder only (patchify + class token + encoder with its final LayerNorm), the
part xmodal's ViT implements. Forward runs in eval mode under torch.inference_mode(), so
PyTorch uses its fused multi-head-attention fast path.
"""
import argparse
import json
import time

import torch
import torchvision


def throughput(step, batch, warmup, seconds):
    for _ in range(warmup):
        step()
    iterations, start = 0, time.perf_counter()
    elapsed = 0.0
    while iterations < 3 or elapsed < seconds:
        step()
        iterations += 1
        elapsed = time.perf_counter() - start
    return iterations * batch / elapsed


def main():
    p = argparse.ArgumentParser()
    for name, default in (("image", 112), ("patch", 16), ("hidden", 192), ("layers", 6),
                          ("heads", 3), ("mlp", 768), ("batch", 32), ("threads", 0),
                          ("seconds", 5)):
        p.add_argument("--" + name, type=int, default=default)
    p.add_argument("--label", default="torchvision")
    a = p.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=a.image, patch_size=a.patch, num_layers=a.layers, num_heads=a.heads,
        hidden_dim=a.hidden, mlp_dim=a.mlp)
    images = torch.randn(a.batch, 3, a.image, a.image)

    def encode(x):
        x = model._process_input(x)
        x = torch.cat([model.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        return model.encoder(x)

    model.eval()

    def forward():
        with torch.inference_mode():
            encode(images)

    fwd = throughput(forward, a.batch, 2, a.seconds)
    model.train()

    def train():
        model.zero_grad()
        encode(images).mean().backward()

    trn = throughput(train, a.batch, 2, a.seconds)
    print(json.dumps({"impl": a.label, "threads": torch.get_num_threads(), "batch": a.batch,
                      "forward_sps": round(fwd, 1), "train_sps": round(trn, 1)}))


if __name__ == "__main__":
    main()
