// Tokenizer throughput on one thread, questions/s over the 10,570 SQuAD v1.1 dev questions of
// tests/data/text/wordpiece/squad_questions.tsv (best of 5 passes):
//   - WordPiece encode_ids() (bert-base-uncased vocab), the ids HF's BertTokenizer gives;
//   - WordPiece encode(text, 32): [CLS] ... [SEP] + padding, through tokenize() + token_id();
//   - SentencePiece encode_ids() with the 1000-piece upstream test model.
// Run from the repository root: build/xmodal_bench_tokenize [DATA_DIR]
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "xmodal/io/atomic_file.h"
#include "xmodal/text/sentencepiece.h"
#include "xmodal/text/wordpiece.h"

namespace {

// Best questions/s of `passes` runs of `fn` over every question.
double questions_per_second(const std::vector<std::string>& questions,
                            const std::function<size_t(const std::string&)>& fn, int passes = 5) {
  double best = 0;
  size_t sink = 0;
  for (int p = 0; p < passes; ++p) {
    const auto start = std::chrono::steady_clock::now();
    for (const auto& q : questions) sink += fn(q);
    const double s =
        std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    best = std::max(best, questions.size() / s);
  }
  if (sink == 0) std::printf("(no tokens)\n");
  return best;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const std::string data = argc > 1 ? argv[1] : "tests/data/text";
    std::istringstream in(xmodal::io::read_file(data + "/wordpiece/squad_questions.tsv"));
    std::vector<std::string> questions;
    size_t chars = 0;
    for (std::string line; std::getline(in, line);) {
      questions.push_back(line.substr(0, line.find('\t')));
      chars += questions.back().size();
    }
    std::printf("%zu questions, %.1f bytes on average\n", questions.size(),
                static_cast<double>(chars) / questions.size());

    const auto wp =
        xmodal::text::WordPieceTokenizer::load(data + "/wordpiece/bert_base_uncased_vocab.txt");
    std::printf("wordpiece encode_ids:      %9.0f questions/s\n",
                questions_per_second(
                    questions, [&](const std::string& q) { return wp.encode_ids(q).size(); }));
    std::printf("wordpiece encode(q, 32):   %9.0f questions/s\n",
                questions_per_second(
                    questions, [&](const std::string& q) { return wp.encode(q, 32).ids.size(); }));
    const auto sp =
        xmodal::text::SentencePieceTokenizer::load(data + "/sentencepiece/test_model.model");
    std::printf("sentencepiece encode_ids:  %9.0f questions/s\n",
                questions_per_second(
                    questions, [&](const std::string& q) { return sp.encode_ids(q).size(); }));
    return 0;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "tokenize_bench: %s\n", e.what());
    return 1;
  }
}
