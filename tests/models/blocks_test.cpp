#include "xmodal/models/blocks.h"

#include <gtest/gtest.h>

#include "../support/fixtures.h"
#include "xmodal/models/import.h"

namespace xmodal::models {
namespace {

using xmodal::testing::load_fixture;
using xmodal::testing::max_abs_diff;
using xmodal::testing::with_prefix;

// nn.TransformerEncoderLayer names -> EncoderLayer names.
TensorMap from_torch_layer(const TensorMap& t) {
  return {{"attention.qkv.weight", t.at("self_attn.in_proj_weight")},
          {"attention.qkv.bias", t.at("self_attn.in_proj_bias")},
          {"attention.out.weight", t.at("self_attn.out_proj.weight")},
          {"attention.out.bias", t.at("self_attn.out_proj.bias")},
          {"mlp.fc1.weight", t.at("linear1.weight")},
          {"mlp.fc1.bias", t.at("linear1.bias")},
          {"mlp.fc2.weight", t.at("linear2.weight")},
          {"mlp.fc2.bias", t.at("linear2.bias")},
          {"norm1.weight", t.at("norm1.weight")},
          {"norm1.bias", t.at("norm1.bias")},
          {"norm2.weight", t.at("norm2.weight")},
          {"norm2.bias", t.at("norm2.bias")}};
}

TEST(EncoderLayer, MatchesPyTorchTransformerEncoderLayerPreAndPostNorm) {
  const auto f = load_fixture("models/encoder_layers.safetensors");
  for (const auto& [name, norm_first, eps] :
       {std::tuple{"prenorm", true, 1e-6}, std::tuple{"postnorm", false, 1e-12}}) {
    SCOPED_TRACE(name);
    EncoderLayer layer(EncoderLayerOptions(16, 2, 32).norm_first(norm_first).eps(eps));
    load_state(*layer, from_torch_layer(with_prefix(f, std::string(name) + ".")), true, name);
    const auto padding = f.at("input.padding");
    const auto out = layer(f.at("input.x"), padding);
    // Outputs of real tokens must match; PyTorch's own values at padded positions are as
    // arbitrary as ours, so compare only rows that are not padding.
    const auto real = padding.logical_not().unsqueeze(-1).expand_as(out);
    EXPECT_LE(max_abs_diff(out.masked_select(real),
                           f.at("output." + std::string(name)).masked_select(real)),
              1e-5);
  }
}

TEST(EncoderLayer, PaddingDoesNotChangeRealTokens) {
  torch::manual_seed(0);
  for (bool norm_first : {true, false}) {
    EncoderLayer layer(EncoderLayerOptions(8, 2, 16).norm_first(norm_first));
    const auto x = torch::randn({2, 5, 8});
    const auto base = layer(x, torch::zeros({2, 5}, torch::kBool));
    const auto padded_x = torch::cat({x, torch::randn({2, 3, 8}) * 10}, 1);
    auto mask = torch::zeros({2, 8}, torch::kBool);
    mask.narrow(1, 5, 3).fill_(true);
    const auto padded = layer(padded_x, mask);
    EXPECT_LE(max_abs_diff(padded.narrow(1, 0, 5), base), 1e-5);
    EXPECT_TRUE(
        torch::isfinite(layer(padded_x, torch::ones({2, 8}, torch::kBool))).all().item<bool>())
        << "a fully padded row must not produce NaN";
  }
}

TEST(EncoderLayer, ParameterNamesAreStable) {
  EncoderLayer layer(EncoderLayerOptions(8, 2, 16));
  EXPECT_EQ(xmodal::testing::param_names(*layer),
            (std::vector<std::string>{
                "norm1.weight", "norm1.bias", "attention.qkv.weight", "attention.qkv.bias",
                "attention.out.weight", "attention.out.bias", "norm2.weight", "norm2.bias",
                "mlp.fc1.weight", "mlp.fc1.bias", "mlp.fc2.weight", "mlp.fc2.bias"}));
}

TEST(Blocks, GeluIsTheExactErfForm) {
  const auto x = torch::linspace(-4, 4, 33, torch::kFloat64);
  const auto expected = x * 0.5 * (1 + torch::erf(x / std::sqrt(2.0)));
  EXPECT_LE(max_abs_diff(exact_gelu(x), expected), 1e-12);
}

TEST(Blocks, ContractsAreCheckedWithTheValues) {
  try {
    MultiHeadAttention(MultiHeadAttentionOptions(10, 3));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(
        std::string(e.what_without_backtrace()).find("dim (10) must be divisible by heads (3)"),
        std::string::npos);
  }
  MultiHeadAttention attention(MultiHeadAttentionOptions(8, 2));
  EXPECT_THROW(attention(torch::randn({2, 3, 7})), c10::Error);
  EXPECT_THROW(attention(torch::randn({2, 3, 8}), torch::zeros({2, 4}, torch::kBool)), c10::Error);
}

}  // namespace
}  // namespace xmodal::models
