#!/usr/bin/python3
"""Writes the reference fixtures of tests/models/ (small safetensors files).

Run with Debian's Python, which has python3-torch and python3-torchvision (1.13 / 0.14):
    /usr/bin/python3 scripts/make_model_fixtures.py [OUT_DIR]     # default tests/data/models

Outputs, each holding the weights under their ORIGINAL names (the C++ tests go through
xmodal's name maps), the inputs under "input.*" and the reference outputs under "output.*":
  vit_torchvision.safetensors   torchvision VisionTransformer (image 32, patch 8, 2 layers,
                                2 heads, hidden 16, mlp 32); output.hidden = the encoder's
                                output after its final LayerNorm, [B, 1 + P, D]
  bert_tiny_reference.safetensors
                                the tiny Hugging Face BERT of shared/fixtures/tiny-bert (its
                                pytorch_model.bin, plus a seeded random pooler), run through an
                                independent BERT made of torch.nn blocks only: nn.Embedding,
                                nn.LayerNorm, nn.TransformerEncoderLayer (post-norm, GELU,
                                eps 1e-12), nn.Linear + tanh pooler
  encoder_layers.safetensors    nn.TransformerEncoderLayer in pre-norm and post-norm form with
                                a key-padding mask (prenorm.* / postnorm.* weights)
"""
import json
import os
import struct
import sys

import torch
import torchvision

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DTYPES = {torch.float32: "F32", torch.float64: "F64", torch.int64: "I64", torch.int32: "I32",
          torch.bool: "BOOL", torch.uint8: "U8"}


def save_safetensors(path, tensors, metadata=None):
    """The safetensors format, written by hand (no extra package needed)."""
    header, blobs, offset = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name in sorted(tensors):
        t = tensors[name].detach().contiguous().cpu()
        data = t.numpy().tobytes() if t.dtype != torch.bool else t.to(torch.uint8).numpy().tobytes()
        header[name] = {"dtype": DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for b in blobs:
            f.write(b)
    print(f"wrote {path} ({8 + len(text) + offset} bytes, {len(tensors)} tensors)")


def vit_fixture(out):
    torch.manual_seed(0)
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=16, mlp_dim=32,
        num_classes=5)
    # torchvision zero-inits some tensors; randomise everything so every weight matters.
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    model.eval()
    images = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        x = model._process_input(images)
        x = torch.cat([model.class_token.expand(x.shape[0], -1, -1), x], dim=1)
        hidden = model.encoder(x)
    tensors = dict(model.state_dict())
    tensors["input.images"] = images
    tensors["output.hidden"] = hidden
    save_safetensors(os.path.join(out, "vit_torchvision.safetensors"), tensors,
                     {"torch": torch.__version__, "torchvision": torchvision.__version__})


def hf_vit_fixture(out):
    """A torchvision ViT saved as a Hugging Face ViTForImageClassification folder (HF names,
    config.json, pytorch_model.bin in torch.save's zip format), plus an image and the torchvision
    output for it: `xmodal embed` through model.vision.pretrained must reproduce it."""
    import collections
    import json
    torch.manual_seed(1)
    d, layers = 32, 2
    model = torchvision.models.VisionTransformer(
        image_size=32, patch_size=8, num_layers=layers, num_heads=2, hidden_dim=d, mlp_dim=64,
        num_classes=3)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.2)
    model.eval()
    sd = model.state_dict()
    hf = collections.OrderedDict()
    hf["vit.embeddings.cls_token"] = sd["class_token"]
    hf["vit.embeddings.position_embeddings"] = sd["encoder.pos_embedding"]
    hf["vit.embeddings.patch_embeddings.projection.weight"] = sd["conv_proj.weight"]
    hf["vit.embeddings.patch_embeddings.projection.bias"] = sd["conv_proj.bias"]
    for i in range(layers):
        src, dst = f"encoder.layers.encoder_layer_{i}.", f"vit.encoder.layer.{i}."
        for part in ("weight", "bias"):
            # q, k and v stay views of one storage: the reader must honour storage offsets.
            q, k, v = sd[src + "self_attention.in_proj_" + part].chunk(3)
            hf[dst + "attention.attention.query." + part] = q
            hf[dst + "attention.attention.key." + part] = k
            hf[dst + "attention.attention.value." + part] = v
            hf[dst + "attention.output.dense." + part] = sd[src + "self_attention.out_proj." + part]
            hf[dst + "layernorm_before." + part] = sd[src + "ln_1." + part]
            hf[dst + "layernorm_after." + part] = sd[src + "ln_2." + part]
            hf[dst + "intermediate.dense." + part] = sd[src + "mlp.0." + part]
            hf[dst + "output.dense." + part] = sd[src + "mlp.3." + part]
    hf["vit.layernorm.weight"] = sd["encoder.ln.weight"]
    hf["vit.layernorm.bias"] = sd["encoder.ln.bias"]
    hf["vit.pooler.dense.weight"] = torch.randn(d, d)  # ViTModel's pooler: not used by xmodal
    hf["vit.pooler.dense.bias"] = torch.randn(d)
    hf["classifier.weight"] = sd["heads.head.weight"]
    hf["classifier.bias"] = sd["heads.head.bias"]
    folder = os.path.join(out, "hf_vit")
    os.makedirs(folder, exist_ok=True)
    torch.save(hf, os.path.join(folder, "pytorch_model.bin"))
    config = {"architectures": ["ViTForImageClassification"], "model_type": "vit",
              "hidden_size": d, "num_hidden_layers": layers, "num_attention_heads": 2,
              "intermediate_size": 64, "image_size": 32, "patch_size": 8, "num_channels": 3,
              "hidden_act": "gelu", "layer_norm_eps": 1e-6, "qkv_bias": True}
    with open(os.path.join(folder, "config.json"), "w") as f:
        json.dump(config, f, indent=2)
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8,
                          generator=torch.Generator().manual_seed(2))
    torchvision.io.write_png(image, os.path.join(out, "hf_vit_image.png"))
    x = (image.float() / 255.0 - 0.5) / 0.5  # data.mean = data.stddev = 0.5 (the defaults)
    with torch.no_grad():
        t = model._process_input(x[None])
        t = torch.cat([model.class_token.expand(1, -1, -1), t], dim=1)
        hidden = model.encoder(t)
    save_safetensors(os.path.join(out, "hf_vit_reference.safetensors"),
                     {"input.pixels": x[None], "output.hidden": hidden},
                     {"torch": torch.__version__, "torchvision": torchvision.__version__})
    print(f"wrote {folder}/ (config.json, pytorch_model.bin) and hf_vit_image.png")


def bert_fixture(out):
    bin_path = os.path.join(ROOT, "..", "shared", "fixtures", "tiny-bert", "pytorch_model.bin")
    if not os.path.exists(bin_path):
        bin_path = os.path.join(ROOT, "tests", "data", "tiny-bert", "pytorch_model.bin")
    state = torch.load(bin_path, map_location="cpu")
    config = json.load(open(os.path.join(os.path.dirname(bin_path), "config.json")))
    d, heads = config["hidden_size"], config["num_attention_heads"]
    eps = config["layer_norm_eps"]
    torch.manual_seed(1)
    state["bert.pooler.dense.weight"] = torch.randn(d, d) * 0.2
    state["bert.pooler.dense.bias"] = torch.randn(d) * 0.2

    g = lambda name: state["bert." + name]
    word = torch.nn.Embedding.from_pretrained(g("embeddings.word_embeddings.weight"))
    pos = torch.nn.Embedding.from_pretrained(g("embeddings.position_embeddings.weight"))
    typ = torch.nn.Embedding.from_pretrained(g("embeddings.token_type_embeddings.weight"))
    ln = torch.nn.LayerNorm(d, eps=eps)
    ln.load_state_dict({"weight": g("embeddings.LayerNorm.weight"),
                        "bias": g("embeddings.LayerNorm.bias")})
    layers = []
    for i in range(config["num_hidden_layers"]):
        p = f"encoder.layer.{i}."
        layer = torch.nn.TransformerEncoderLayer(
            d, heads, dim_feedforward=config["intermediate_size"], dropout=0.0,
            activation="gelu", layer_norm_eps=eps, batch_first=True, norm_first=False)
        layer.load_state_dict({
            "self_attn.in_proj_weight": torch.cat([g(p + f"attention.self.{n}.weight")
                                                   for n in ("query", "key", "value")]),
            "self_attn.in_proj_bias": torch.cat([g(p + f"attention.self.{n}.bias")
                                                 for n in ("query", "key", "value")]),
            "self_attn.out_proj.weight": g(p + "attention.output.dense.weight"),
            "self_attn.out_proj.bias": g(p + "attention.output.dense.bias"),
            "linear1.weight": g(p + "intermediate.dense.weight"),
            "linear1.bias": g(p + "intermediate.dense.bias"),
            "linear2.weight": g(p + "output.dense.weight"),
            "linear2.bias": g(p + "output.dense.bias"),
            "norm1.weight": g(p + "attention.output.LayerNorm.weight"),
            "norm1.bias": g(p + "attention.output.LayerNorm.bias"),
            "norm2.weight": g(p + "output.LayerNorm.weight"),
            "norm2.bias": g(p + "output.LayerNorm.bias"),
        })
        layer.train()  # dropout is 0; train mode keeps PyTorch off its fused fast path
        layers.append(layer)
    pooler = torch.nn.Linear(d, d)
    pooler.load_state_dict({"weight": g("pooler.dense.weight"), "bias": g("pooler.dense.bias")})

    torch.manual_seed(2)
    length = 10
    input_ids = torch.randint(1, config["vocab_size"], (3, length))
    attention_mask = torch.ones(3, length, dtype=torch.int64)
    attention_mask[1, 6:] = 0  # padded tails
    attention_mask[2, 3:] = 0
    input_ids[attention_mask == 0] = config.get("pad_token_id", 0)
    token_type_ids = torch.zeros(3, length, dtype=torch.int64)
    token_type_ids[0, 5:] = 1
    x = ln(word(input_ids) + pos(torch.arange(length)).unsqueeze(0) + typ(token_type_ids))
    for layer in layers:
        x = layer(x, src_key_padding_mask=attention_mask == 0)
    pooled = torch.tanh(pooler(x[:, 0]))

    tensors = dict(state)
    tensors.update({"input.input_ids": input_ids, "input.attention_mask": attention_mask,
                    "input.token_type_ids": token_type_ids,
                    "output.last_hidden_state": x, "output.pooled": pooled})
    save_safetensors(os.path.join(out, "bert_tiny_reference.safetensors"), tensors,
                     {"torch": torch.__version__, "source": "shared/fixtures/tiny-bert"})


def layer_fixture(out):
    tensors = {}
    torch.manual_seed(3)
    x = torch.randn(2, 7, 16)
    padding = torch.zeros(2, 7, dtype=torch.bool)
    padding[1, 4:] = True
    tensors["input.x"] = x
    tensors["input.padding"] = padding
    for name, norm_first, eps in (("prenorm", True, 1e-6), ("postnorm", False, 1e-12)):
        layer = torch.nn.TransformerEncoderLayer(16, 2, dim_feedforward=32, dropout=0.0,
                                                 activation="gelu", layer_norm_eps=eps,
                                                 batch_first=True, norm_first=norm_first)
        with torch.no_grad():
            for p in layer.parameters():
                p.copy_(torch.randn_like(p) * 0.3)
        layer.train()
        for k, v in layer.state_dict().items():
            tensors[f"{name}.{k}"] = v
        tensors[f"output.{name}"] = layer(x, src_key_padding_mask=padding)
    save_safetensors(os.path.join(out, "encoder_layers.safetensors"), tensors,
                     {"torch": torch.__version__})


if __name__ == "__main__":
    out_dir = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "tests", "data", "models")
    os.makedirs(out_dir, exist_ok=True)
    vit_fixture(out_dir)
    bert_fixture(out_dir)
    layer_fixture(out_dir)
    hf_vit_fixture(out_dir)
