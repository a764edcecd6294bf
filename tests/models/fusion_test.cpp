#include "xmodal/models/fusion.h"

#include <gtest/gtest.h>

#include "../support/fixtures.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

TEST(Fusion, EveryModeGivesPooledOutputAndGradients) {
  torch::manual_seed(0);
  const auto text = torch::randn({2, 5, 12}, torch::requires_grad());
  const auto image = torch::randn({2, 1 + 4, 20}, torch::requires_grad());
  auto padding = torch::zeros({2, 5}, torch::kBool);
  padding[1].narrow(0, 3, 2).fill_(true);
  for (auto mode :
       {FusionMode::concat, FusionMode::late, FusionMode::image_only, FusionMode::text_only}) {
    SCOPED_TRACE(fusion_mode_name(mode));
    Fusion fusion(FusionOptions(mode, 12, 20, 8, 2, 2, 16));
    const auto out = fusion(uses_text(mode) ? text : torch::Tensor(), padding,
                            uses_image(mode) ? image : torch::Tensor());
    EXPECT_EQ(out.pooled.sizes(), torch::IntArrayRef({2, 8}));
    EXPECT_EQ(fusion->output_dim(), 8);
    if (mode == FusionMode::concat) {
      EXPECT_EQ(out.tokens.size(1), 1 + 5 + 5);
    }
    if (mode == FusionMode::image_only) {
      EXPECT_EQ(out.tokens.size(1), 1 + 5);
    }
    if (mode == FusionMode::text_only) {
      EXPECT_EQ(out.tokens.size(1), 1 + 5);
    }
    out.pooled.pow(2).sum().backward();
    EXPECT_EQ(params_without_grad(*fusion), std::vector<std::string>{});
  }
}

TEST(Fusion, PooledOnlyGivesThePooledOutputAndGradientsOfTheFullFusion) {
  torch::manual_seed(1);
  Fusion fusion(FusionOptions(FusionMode::concat, 12, 20, 8, 2, 2, 16));
  const auto text = torch::randn({3, 5, 12});
  const auto image = torch::randn({3, 1 + 4, 20});
  auto padding = torch::zeros({3, 5}, torch::kBool);
  padding[2].narrow(0, 2, 3).fill_(true);
  std::vector<torch::Tensor> pooled, grads;
  for (const bool pooled_only : {false, true}) {
    fusion->zero_grad();
    const auto out = fusion->forward(text, padding, image, pooled_only);
    EXPECT_EQ(out.tokens.defined(), !pooled_only);
    out.pooled.pow(2).sum().backward();
    pooled.push_back(out.pooled.detach());
    grads.push_back(
        fusion->layers[1]->as<EncoderLayerImpl>()->attention->qkv->weight.grad().clone());
    EXPECT_EQ(params_without_grad(*fusion), std::vector<std::string>{});
  }
  EXPECT_LE(max_abs_diff(pooled[0], pooled[1]), 1e-6);
  EXPECT_LE(max_abs_diff(grads[0], grads[1]), 1e-5);
}

TEST(Fusion, ConcatIgnoresPaddedTextTokens) {
  torch::manual_seed(0);
  Fusion fusion(FusionOptions(FusionMode::concat, 12, 20, 8, 2, 2, 16));
  const auto text = torch::randn({1, 4, 12});
  const auto image = torch::randn({1, 5, 20});
  const auto base = fusion(text, torch::zeros({1, 4}, torch::kBool), image).pooled;
  auto padding = torch::zeros({1, 7}, torch::kBool);
  padding.narrow(1, 4, 3).fill_(true);
  const auto padded =
      fusion(torch::cat({text, torch::randn({1, 3, 12}) * 5}, 1), padding, image).pooled;
  EXPECT_LE(max_abs_diff(padded, base), 1e-5);
}

TEST(Fusion, ParameterNamesPerMode) {
  const auto concat = param_names(*Fusion(FusionOptions(FusionMode::concat, 12, 20, 8, 1, 2, 16)));
  for (const char* name :
       {"text_proj.weight", "image_proj.weight", "type_embedding.weight", "cls_token",
        "layers.0.attention.qkv.weight", "norm.weight", "pooler.weight"}) {
    EXPECT_NE(std::find(concat.begin(), concat.end(), name), concat.end()) << name;
  }
  EXPECT_EQ(param_names(*Fusion(FusionOptions(FusionMode::late, 12, 20, 8, 1, 2, 16))),
            (std::vector<std::string>{"late_fc1.weight", "late_fc1.bias", "late_fc2.weight",
                                      "late_fc2.bias"}));
  const auto image_only =
      param_names(*Fusion(FusionOptions(FusionMode::image_only, 12, 20, 8, 1, 2, 16)));
  EXPECT_EQ(std::find(image_only.begin(), image_only.end(), "text_proj.weight"), image_only.end());
}

TEST(Fusion, MissingModalityIsAnError) {
  Fusion fusion(FusionOptions(FusionMode::concat, 12, 20, 8, 1, 2, 16));
  EXPECT_THROW(fusion(torch::Tensor(), torch::Tensor(), torch::randn({1, 5, 20})), c10::Error);
  EXPECT_THROW(fusion(torch::randn({1, 4, 11}), torch::Tensor(), torch::randn({1, 5, 20})),
               c10::Error);
}

}  // namespace
}  // namespace xmodal::models
