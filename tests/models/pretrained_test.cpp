#include "xmodal/models/pretrained.h"

#include <gtest/gtest.h>

#include "../support/fixtures.h"
#include "../support/temp_dir.h"
#include "xmodal/config/loader.h"
#include "xmodal/infer/embed.h"
#include "xmodal/models/factory.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

std::string data(const std::string& relative) {
  return std::string(XMODAL_TEST_DATA) + "/" + relative;
}

// The config of tests/data/models/hf_vit (image 32, patch 8, width 32, 2 layers, 2 heads).
config::Config hf_vit_config() {
  return config::parse_config(
      "data: {image_size: 32}\n"
      "run: {threads: 1}\n"
      "model:\n"
      "  vision: {patch_size: 8, hidden: 32, layers: 2, heads: 2, mlp_dim: 64, pretrained: " +
      data("models/hf_vit") + "}\n");
}

TEST(Pretrained, HuggingFaceViTReproducesTorchvision) {
  auto c = hf_vit_config();
  EXPECT_DOUBLE_EQ(c.model.vision.layer_norm_eps, 1e-6);  // from config.json
  ViT vit(vision_options(c));
  const auto report = load_pretrained_vit(*vit, c.model.vision.pretrained);
  EXPECT_EQ(report.missing, std::vector<std::string>{});
  EXPECT_EQ(report.unused,
            (std::vector<std::string>{"classifier.bias", "classifier.weight",
                                      "vit.pooler.dense.bias", "vit.pooler.dense.weight"}));
  EXPECT_FALSE(report.interpolated_positions);
  EXPECT_EQ(report.loaded, static_cast<int64_t>(vit->named_parameters().size()));
  vit->eval();
  const auto f = load_fixture("models/hf_vit_reference.safetensors");
  EXPECT_LE(max_abs_diff(vit(f.at("input.pixels")), f.at("output.hidden")), 1e-4);
}

TEST(Pretrained, EmbedThroughTheConfigReproducesTorchvision) {
  TempDir dir;
  const auto config_path = dir.write("vit.yaml", config::dump_config(hf_vit_config()));
  infer::EmbedOptions o;
  o.config = config_path;
  o.images = {data("models/hf_vit_image.png")};
  o.no_resize = true;
  o.out = (dir.path() / "f.safetensors").string();
  const auto result = infer::embed(o);
  EXPECT_EQ(result.count, 1);
  EXPECT_EQ(result.tensors, std::vector<std::string>{"vision"});
  const auto out = io::load_safetensors(o.out);
  const auto f = load_fixture("models/hf_vit_reference.safetensors");
  EXPECT_LE(max_abs_diff(out.at("vision"), f.at("output.hidden")), 1e-4);

  // A config holding only the folder reproduces the same output: config.json gives the sizes.
  o.config = dir.write("only.yaml", "model: {vision: {pretrained: " + data("models/hf_vit") +
                                        "}}\nrun: {threads: 1}\n");
  o.out = (dir.path() / "only.safetensors").string();
  infer::embed(o);
  EXPECT_TRUE(torch::equal(io::load_safetensors(o.out).at("vision"), out.at("vision")));
  o.config = config_path;

  // --no-resize refuses an image of another size, naming it.
  o.overrides = {"data.image_size=64", "model.vision.pretrained=" + data("models/hf_vit")};
  try {
    infer::embed(o);
    FAIL();
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("hf_vit_image.png: is 32x32, but no_resize needs 64x64"),
              std::string::npos)
        << e.what();
  }
}

TEST(Pretrained, ViTPositionsAreInterpolatedForAnotherImageSize) {
  auto c = hf_vit_config();
  c.data.image_size = 48;
  ViT vit(vision_options(c));
  const auto report = load_pretrained_vit(*vit, c.model.vision.pretrained);
  EXPECT_TRUE(report.interpolated_positions);
  EXPECT_EQ(vit->position_embedding.sizes(), torch::IntArrayRef({1, 1 + 36, 32}));
}

TEST(Pretrained, TinyHuggingFaceBertBinMatchesTheIndependentReference) {
  auto c = config::parse_config(
      "model:\n"
      "  text: {hidden: 16, layers: 1, heads: 1, intermediate: 64, max_position: 16, pretrained: " +
      data("models/tiny_bert") +
      "}\n"
      "data: {max_text_len: 16}\n");
  EXPECT_EQ(c.model.text.vocab_size, 402);
  EXPECT_DOUBLE_EQ(c.model.text.layer_norm_eps, 1e-12);
  Bert bert(text_options(c, /*tokenizer_vocab=*/405));
  EXPECT_EQ(bert->embeddings->word->weight.size(0), 402);  // config.json's vocab_size wins
  const auto report = load_pretrained_bert(*bert, c.model.text.pretrained);
  EXPECT_EQ(report.missing, std::vector<std::string>{});  // every encoder tensor is in the .bin
  EXPECT_EQ(report.unused, (std::vector<std::string>{"classifier.bias", "classifier.weight"}));
  bert->eval();
  const auto f = load_fixture("models/bert_tiny_reference.safetensors");
  const auto mask = f.at("input.attention_mask");
  const auto out = bert(f.at("input.input_ids"), mask, f.at("input.token_type_ids"));
  const auto real = mask.ne(0).unsqueeze(-1).expand_as(out);
  EXPECT_LE(
      max_abs_diff(out.masked_select(real), f.at("output.last_hidden_state").masked_select(real)),
      1e-5);
}

TEST(Pretrained, HfViTNamesWithoutPrefix) {
  const auto result =
      import_hf_vit({{"encoder.layer.0.attention.attention.query.bias", torch::full({2}, 1.0)},
                     {"encoder.layer.0.attention.attention.key.bias", torch::full({2}, 2.0)},
                     {"encoder.layer.0.attention.attention.value.bias", torch::full({2}, 3.0)},
                     {"layernorm.weight", torch::ones(2)},
                     {"embeddings.mask_token", torch::ones(2)}});
  EXPECT_TRUE(torch::equal(result.tensors.at("layers.0.attention.qkv.bias"),
                           torch::tensor({1.0, 1.0, 2.0, 2.0, 3.0, 3.0}, torch::kFloat)));
  EXPECT_TRUE(result.tensors.count("norm.weight"));
  EXPECT_EQ(result.unused, std::vector<std::string>{"embeddings.mask_token"});
}

}  // namespace
}  // namespace xmodal::models
