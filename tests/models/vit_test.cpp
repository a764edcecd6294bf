#include "xmodal/models/vit.h"

#include <gtest/gtest.h>

#include <cmath>

#include "../support/fixtures.h"
#include "xmodal/models/import.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

TEST(ViT, MatchesTorchvisionVisionTransformer) {
  const auto f = load_fixture("models/vit_torchvision.safetensors");
  TensorMap weights;
  for (const auto& [name, t] : f) {
    if (name.rfind("input.", 0) != 0 && name.rfind("output.", 0) != 0) weights[name] = t;
  }
  const ImportResult imported = import_torchvision_vit(weights);
  EXPECT_EQ(imported.unused, (std::vector<std::string>{"heads.head.bias", "heads.head.weight"}));
  ViT vit(ViTOptions(32, 8, 16, 2, 2, 32));
  load_state(*vit, imported.tensors, /*strict=*/true, "vit_torchvision.safetensors");
  vit->eval();
  const auto out = vit(f.at("input.images"));
  ASSERT_EQ(out.sizes(), f.at("output.hidden").sizes());
  EXPECT_LE(max_abs_diff(out, f.at("output.hidden")), 1e-5);
}

TEST(ViT, ShapesGradientsAndNames) {
  torch::manual_seed(0);
  ViT vit(ViTOptions(16, 8, 8, 1, 2, 16));
  const auto out = vit(torch::randn({2, 3, 16, 16}));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, 5, 8}));
  EXPECT_EQ(vit->output_dim(), 8);
  out.pow(2).sum().backward();
  EXPECT_EQ(params_without_grad(*vit), std::vector<std::string>{});
  const auto names = param_names(*vit);
  EXPECT_EQ(std::vector<std::string>(names.begin(), names.begin() + 4),
            (std::vector<std::string>{"cls_token", "position_embedding", "patch_embedding.weight",
                                      "patch_embedding.bias"}));
  EXPECT_EQ(names.back(), "norm.bias");
  EXPECT_NE(std::find(names.begin(), names.end(), "layers.0.attention.qkv.weight"), names.end());
}

TEST(ViT, InterpolatesPositionEmbeddingsForOtherSizes) {
  torch::manual_seed(0);
  ViT vit(ViTOptions(16, 4, 8, 1, 2, 16));
  // Same grid: the trained embeddings unchanged.
  EXPECT_TRUE(torch::equal(vit->position_embedding_for(4, 4), vit->position_embedding));
  // Larger, non-square input: [B, 1 + 6*8, D], the class token's embedding kept.
  const auto pe = vit->position_embedding_for(6, 8);
  EXPECT_EQ(pe.sizes(), torch::IntArrayRef({1, 49, 8}));
  EXPECT_TRUE(torch::equal(pe.narrow(1, 0, 1), vit->position_embedding.narrow(1, 0, 1)));
  const auto out = vit(torch::randn({1, 3, 24, 32}));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({1, 49, 8}));
  out.sum().backward();
  EXPECT_TRUE(vit->position_embedding.grad().defined());
}

TEST(ViT, SineCosinePositionsAreExactForAnyGridAndHaveNoParameters) {
  // dim 4: one frequency (1); patch (row 0, column 1) of a 2 x 2 grid sits at x 1.5, y 0.5
  const auto pe = sincos_position_embedding(2, 2, 2, 4);
  ASSERT_EQ(pe.sizes(), torch::IntArrayRef({1, 5, 4}));
  EXPECT_TRUE(torch::equal(pe[0][0], torch::zeros({4})));  // [CLS]
  EXPECT_TRUE(torch::allclose(
      pe[0][2], torch::tensor({std::sin(1.5f), std::cos(1.5f), std::sin(0.5f), std::cos(0.5f)})));
  // a 4 x 4 grid over the same 2-cell image: centres at 0.25, 0.75, ... of a cell
  const auto fine = sincos_position_embedding(4, 4, 2, 4);
  EXPECT_NEAR(fine[0][1 + 4 * 3 + 2][0].item<float>(), std::sin(1.25f), 1e-6);  // column 2
  EXPECT_NEAR(fine[0][1 + 4 * 3 + 2][2].item<float>(), std::sin(1.75f), 1e-6);  // row 3
  // every patch of a 6 x 6 grid has its own embedding
  const auto grid = sincos_position_embedding(6, 6, 6, 16).narrow(1, 1, 36)[0];
  EXPECT_GT(torch::cdist(grid, grid).add(torch::eye(36)).min().item<float>(), 0.1f);

  torch::manual_seed(0);
  ViT vit(ViTOptions(16, 8, 8, 1, 2, 16).sincos_positions(true));
  EXPECT_FALSE(vit->position_embedding.defined());
  const auto names = param_names(*vit);
  EXPECT_EQ(std::find(names.begin(), names.end(), "position_embedding"), names.end());
  EXPECT_TRUE(
      torch::equal(vit->position_embedding_for(2, 2), sincos_position_embedding(2, 2, 2, 8)));
  const auto out = vit(torch::randn({1, 3, 32, 24}));  // another grid: 4 x 3
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({1, 13, 8}));
  EXPECT_THROW(ViT(ViTOptions(16, 8, 6, 1, 2, 16).sincos_positions(true)), c10::Error);
}

TEST(ViT, ConvolutionalStemKeepsTheTokenGrid) {
  torch::manual_seed(0);
  // patch 8 = 3 stride-2 blocks: widths 4, 8, 16 (capped at hidden 16), then a 1x1 projection.
  ViT vit(ViTOptions(32, 8, 16, 1, 2, 32).conv_stem(true).stem_width(4));
  EXPECT_EQ(vit->stem->size(), 3u);
  EXPECT_EQ(vit->stem_channels(), 16);
  EXPECT_EQ(vit->patch_embedding->weight.sizes(), torch::IntArrayRef({16, 16, 1, 1}));
  const auto params = vit->named_parameters();
  EXPECT_TRUE(params.contains("stem.0.conv.weight"));
  EXPECT_TRUE(params.contains("stem.2.norm.bias"));
  EXPECT_TRUE(vit->named_buffers().contains("stem.1.norm.running_mean"));
  const auto out = vit(torch::randn({2, 3, 32, 32}));
  EXPECT_EQ(out.sizes(), torch::IntArrayRef({2, 1 + 16, 16}));
  out.sum().backward();
  EXPECT_TRUE(vit->stem[0]->as<StemBlockImpl>()->conv->weight.grad().defined());
  EXPECT_THROW(ViT(ViTOptions(36, 12, 16, 1, 2, 32).conv_stem(true)), c10::Error);
  // Without a stem nothing changes: no stem parameters.
  ViT plain(ViTOptions(32, 8, 16, 1, 2, 32));
  for (const auto& p : plain->named_parameters()) EXPECT_NE(p.key().rfind("stem.", 0), 0u);
}

TEST(ViT, RejectsBadSizesWithTheValues) {
  try {
    ViT(ViTOptions(32, 8, 30, 1, 4, 16));
    FAIL();
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what_without_backtrace())
                  .find("hidden_size (30) must be divisible by num_heads (4)"),
              std::string::npos);
  }
  EXPECT_THROW(ViT(ViTOptions(30, 8, 8, 1, 2, 16)), c10::Error);
  ViT vit(ViTOptions(16, 8, 8, 1, 2, 16));
  EXPECT_THROW(vit(torch::randn({1, 3, 15, 16})), c10::Error);
  EXPECT_THROW(vit(torch::randn({1, 1, 16, 16})), c10::Error);
}

}  // namespace
}  // namespace xmodal::models
