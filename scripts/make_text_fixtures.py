#!/usr/bin/python3
"""Copies the tokenizer fixtures the tests use into tests/data/text/ (see its SOURCES.txt).

    /usr/bin/python3 scripts/make_text_fixtures.py [--src /work/shared/fixtures]

Small files are copied byte for byte. Two are derived, to keep the repository small:
  - wordpiece/squad_questions.tsv: the 10,570 SQuAD v1.1 dev questions of swift-transformers'
    question_tokens.json (3.2 MB) with their ids from tokenized_questions.json (0.8 MB), one
    "question<TAB>id id id" line each, in the files' order;
  - wordpiece/swift_bert_uncased_cases.json: the "bert-base-uncased" entry (18 cases) of
    swift-transformers' tokenizer_tests.json, whose other entries are other tokenizers.
Standard library only; the output depends only on the input files.
"""
import argparse
import json
import pathlib
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "tests/data/text"

COPIES = {
    "wordpiece": [
        "bert_base_uncased_vocab.txt",
        "swift_bert_uncased_encoded.json",
        "llamacpp_ggml-vocab-bert-bge.gguf.inp",
        "llamacpp_ggml-vocab-bert-bge.gguf.out",
        "UPSTREAM_torchtext_bert_tokenizer_vectors.json",
        "UPSTREAM_google_bert_tokenization_test_vectors.json",
    ],
    "sentencepiece": [
        "test_model.model",
        "UPSTREAM_test_vectors.json",
        "DERIVED_spm_encode_vectors.json",
    ],
}


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--src", type=pathlib.Path, default=pathlib.Path("/work/shared/fixtures"))
    args = parser.parse_args()

    for folder, names in COPIES.items():
        (OUT / folder).mkdir(parents=True, exist_ok=True)
        for name in names:
            shutil.copyfile(args.src / folder / name, OUT / folder / name)

    wp = args.src / "wordpiece"
    questions = json.loads((wp / "swift_question_tokens.json").read_text(encoding="utf-8"))
    ids = json.loads((wp / "swift_tokenized_questions.json").read_text(encoding="utf-8"))
    assert len(questions) == len(ids) == 10570
    lines = []
    for q, row in zip(questions, ids):
        text = q["original"]
        assert "\t" not in text and "\n" not in text and "\r" not in text, text
        lines.append(text + "\t" + " ".join(str(i) for i in row) + "\n")
    (OUT / "wordpiece/squad_questions.tsv").write_text("".join(lines), encoding="utf-8")

    tests = json.loads((wp / "swift_tokenizer_tests.json").read_text(encoding="utf-8"))
    cases = tests["bert-base-uncased"]
    assert cases == tests["google-bert/bert-base-uncased"] and len(cases) == 18
    (OUT / "wordpiece/swift_bert_uncased_cases.json").write_text(
        json.dumps(cases, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
