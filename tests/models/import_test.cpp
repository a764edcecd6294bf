#include "xmodal/models/import.h"

#include <gtest/gtest.h>

#include "../support/fixtures.h"
#include "xmodal/models/vit.h"

namespace xmodal::models {
namespace {

TEST(Import, ReportsMissingUnexpectedAndShapeMismatches) {
  torch::nn::Linear linear(3, 2);
  auto report = load_state(*linear, {{"weight", torch::ones({2, 3})}, {"extra", torch::ones(1)}},
                           /*strict=*/false, "w.safetensors");
  EXPECT_EQ(report.missing, std::vector<std::string>{"bias"});
  EXPECT_EQ(report.unexpected, std::vector<std::string>{"extra"});
  EXPECT_TRUE(torch::equal(linear->weight, torch::ones({2, 3})));
  try {
    load_state(*linear, {{"weight", torch::ones({3, 3})}, {"extra", torch::ones(1)}}, true,
               "w.safetensors");
    FAIL();
  } catch (const std::runtime_error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("weight: shape [3, 3] in w.safetensors, but the model has [2, 3]"),
              std::string::npos)
        << m;
    EXPECT_NE(m.find("missing from w.safetensors: bias"), std::string::npos) << m;
    EXPECT_NE(m.find("unexpected in w.safetensors: extra"), std::string::npos) << m;
  }
}

TEST(Import, HfBertNamesWithOrWithoutPrefixAndOldLayerNormNames) {
  const auto q = torch::full({4, 4}, 1.0), k = torch::full({4, 4}, 2.0),
             v = torch::full({4, 4}, 3.0);
  const auto result = import_hf_bert({{"encoder.layer.0.attention.self.query.weight", q},
                                      {"encoder.layer.0.attention.self.key.weight", k},
                                      {"encoder.layer.0.attention.self.value.weight", v},
                                      {"bert.embeddings.LayerNorm.gamma", torch::ones(4)},
                                      {"bert.embeddings.position_ids", torch::arange(4)},
                                      {"cls.predictions.bias", torch::ones(4)}});
  EXPECT_TRUE(
      torch::equal(result.tensors.at("layers.0.attention.qkv.weight"), torch::cat({q, k, v})));
  EXPECT_TRUE(result.tensors.count("embeddings.norm.weight"));
  EXPECT_EQ(result.unused, std::vector<std::string>{"cls.predictions.bias"});
  EXPECT_THROW(import_hf_bert({{"encoder.layer.0.attention.self.query.weight", q}}),
               std::runtime_error);
}

TEST(Import, TorchvisionOldMlpNames) {
  const auto result = import_torchvision_vit(
      {{"encoder.layers.encoder_layer_3.mlp.linear_1.weight", torch::ones(1)},
       {"encoder.layers.encoder_layer_3.mlp.3.bias", torch::ones(1)}});
  EXPECT_TRUE(result.tensors.count("layers.3.mlp.fc1.weight"));
  EXPECT_TRUE(result.tensors.count("layers.3.mlp.fc2.bias"));
}

}  // namespace
}  // namespace xmodal::models
