#include "xmodal/models/bert.h"

#include <gtest/gtest.h>

#include "../support/fixtures.h"
#include "xmodal/models/import.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

// The tiny Hugging Face BERT (hidden 16, 1 layer, 1 head, vocab 402, 16 positions).
Bert tiny_bert(const std::map<std::string, torch::Tensor>& fixture, ImportResult* imported_out) {
  TensorMap weights;
  for (const auto& [name, t] : fixture) {
    if (name.rfind("input.", 0) != 0 && name.rfind("output.", 0) != 0) weights[name] = t;
  }
  ImportResult imported = import_hf_bert(weights);
  Bert bert(BertOptions(402, 16, 1, 1, 64).max_position(16).eps(1e-12));
  load_state(*bert, imported.tensors, /*strict=*/true, "bert_tiny_reference.safetensors");
  if (imported_out) *imported_out = imported;
  return bert;
}

TEST(Bert, MatchesAnIndependentTorchNnBert) {
  const auto f = load_fixture("models/bert_tiny_reference.safetensors");
  ImportResult imported;
  Bert bert = tiny_bert(f, &imported);
  // The token-classification head has no place in BertModel; position_ids is dropped.
  EXPECT_EQ(imported.unused, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
  bert->eval();
  const auto mask = f.at("input.attention_mask");
  const auto out = bert(f.at("input.input_ids"), mask, f.at("input.token_type_ids"));
  const auto want = f.at("output.last_hidden_state");
  ASSERT_EQ(out.sizes(), want.sizes());
  const auto real = mask.ne(0).unsqueeze(-1).expand_as(out);
  EXPECT_LE(max_abs_diff(out.masked_select(real), want.masked_select(real)), 1e-5);
  EXPECT_LE(max_abs_diff(bert->pool(out), f.at("output.pooled")), 1e-5);
}

TEST(Bert, PaddingDoesNotChangeRealTokens) {
  const auto f = load_fixture("models/bert_tiny_reference.safetensors");
  Bert bert = tiny_bert(f, nullptr);
  const auto ids = f.at("input.input_ids").narrow(0, 0, 1).narrow(1, 0, 6);
  const auto base = bert(ids, torch::ones_like(ids));
  const auto padded_ids = torch::cat({ids, torch::zeros({1, 4}, torch::kLong)}, 1);
  auto mask = torch::ones_like(padded_ids);
  mask.narrow(1, 6, 4).zero_();
  EXPECT_LE(max_abs_diff(bert(padded_ids, mask).narrow(1, 0, 6), base), 1e-5);
}

TEST(Bert, GradientsNamesAndErrors) {
  torch::manual_seed(0);
  Bert bert(BertOptions(50, 8, 2, 2, 16).max_position(12));
  const auto ids = torch::randint(1, 50, {2, 6});
  const auto out = bert(ids, torch::ones_like(ids), torch::zeros_like(ids));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, 6, 8}));
  bert->pool(out).sum().backward();
  EXPECT_EQ(params_without_grad(*bert), std::vector<std::string>{});
  const auto names = param_names(*bert);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 5),
            (std::vector<std::string>{"embeddings.word.weight", "embeddings.position.weight",
                                      "embeddings.token_type.weight", "embeddings.norm.weight",
                                      "embeddings.norm.bias"}));
  EXPECT_EQ(names.back(), "pooler.dense.bias");
  EXPECT_THROW(bert(torch::randint(1, 50, {1, 13})), c10::Error);  // longer than max_position
  EXPECT_THROW(bert(ids, torch::ones({2, 5}, torch::kLong)), c10::Error);
  Bert no_pooler(BertOptions(50, 8, 1, 2, 16).pooler(false));
  EXPECT_THROW(no_pooler->pool(out), c10::Error);
}

}  // namespace
}  // namespace xmodal::models
