#!/usr/bin/python3
"""The PyTorch + FastAPI peer of `xmodal serve` (scripts/bench/serve.sh): the same model
(model_bench.py's Peer, built from `xmodal_bench_model --mode arch` sizes) behind the API a
Python deployment writes, served by uvicorn: POST /v1/predict {"image": BASE64, "text": T,
"top_k": K} -> {"answers": [{"answer", "probability"}], "text"}; GET /health.

The per-request work is xmodal's: base64 -> decode (torchvision.io, libpng/libjpeg) -> bilinear
resize -> normalise -> tokenise (lowercase words, a fixed vocabulary) -> forward under
torch.inference_mode() -> sigmoid -> top-k. A plain `def` endpoint: FastAPI runs it on its
thread pool, as most deployments do (an `async def` one would run one request at a time).

    serve_peer.py --arch JSON --port P [--threads T]
"""
import argparse
import base64
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import model_bench  # noqa: E402


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--arch", required=True)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=0)
    a = p.parse_args()
    arch = json.loads(a.arch)

    import torch
    import torchvision
    import uvicorn
    from fastapi import FastAPI, HTTPException
    from pydantic import BaseModel
    from torch import nn
    from torchvision.io import ImageReadMode, decode_image

    if a.threads:
        torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = model_bench.build(arch, torch, nn, torchvision).eval()
    size, length, vocab = arch["image"], arch["text_len"], arch["vocab"]
    words = {}

    class Item(BaseModel):
        image: str
        text: str
        top_k: int = 5

    app = FastAPI()

    @app.get("/health")
    def health():
        return {"status": "ok"}

    @app.post("/v1/predict")
    def predict(item: Item):
        try:
            data = torch.frombuffer(bytearray(base64.b64decode(item.image, validate=True)),
                                    dtype=torch.uint8)
            image = decode_image(data, ImageReadMode.RGB).float().div(255)
        except Exception as e:  # noqa: BLE001 (what a handler of user input does)
            raise HTTPException(400, f"image: {e}")
        image = nn.functional.interpolate(image.unsqueeze(0), size=(size, size),
                                          mode="bilinear", align_corners=False)
        image = (image - 0.5) / 0.5
        tokens = item.text.lower().replace("?", " ?").split()[:length - 2]
        ids = torch.zeros(1, length, dtype=torch.long)
        ids[0, 0] = 2
        for i, w in enumerate(tokens):
            ids[0, 1 + i] = words.setdefault(w, 4 + len(words) % (vocab - 4))
        ids[0, 1 + len(tokens)] = 3
        mask = ids.ne(0).long()
        with torch.inference_mode():
            scores = model(image, ids, mask, torch.zeros_like(ids))[0].sigmoid()[0]
        top = torch.topk(scores, min(item.top_k, scores.numel()))
        return {"text": item.text,
                "answers": [{"answer": str(int(i)), "probability": float(s)}
                            for s, i in zip(top.values, top.indices)]}

    uvicorn.run(app, host="127.0.0.1", port=a.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
