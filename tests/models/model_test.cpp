#include "xmodal/models/model.h"

#include <gtest/gtest.h>

#include <string>
#include <tuple>
#include <vector>

#include "../support/fixtures.h"
#include "../support/tiny_model.h"
#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

config::Config tiny_config() { return tiny_model_config(); }

TEST(Model, EveryTaskAndFusionModeBuildsRunsAndTrainsEveryParameter) {
  torch::manual_seed(0);
  const auto images = torch::randn({2, 3, 16, 16});
  const auto ids = torch::randint(1, 30, {2, 6});
  auto mask = torch::ones({2, 6}, torch::kLong);
  mask[1].narrow(0, 4, 2).zero_();
  for (auto task : {config::Task::vqa, config::Task::counting}) {
    for (auto mode : {config::FusionMode::concat, config::FusionMode::late,
                      config::FusionMode::image_only, config::FusionMode::text_only}) {
      SCOPED_TRACE(config::to_string(task) + "/" + config::to_string(mode));
      auto c = tiny_config();
      c.task = task;
      c.model.fusion.mode = mode;
      Model model = tasks::build_model(c, {30, 5});
      const auto out = model(images, ids, mask);
      EXPECT_EQ(out.pooled.sizes(), torch::IntArrayRef({2, 16}));
      torch::Tensor loss;
      if (task == config::Task::vqa) {
        EXPECT_EQ(out.at("logits").sizes(), torch::IntArrayRef({2, 5}));
        loss = out.at("logits").pow(2).sum();
      } else {
        EXPECT_EQ(out.at("presence").sizes(), torch::IntArrayRef({2, 5}));
        EXPECT_EQ(out.at("counts").sizes(), torch::IntArrayRef({2, 5, 4}));
        loss = out.at("presence").pow(2).sum() + out.at("counts").pow(2).sum();
      }
      loss.backward();
      EXPECT_EQ(params_without_grad(*model), std::vector<std::string>{});
      const auto names = param_names(*model);
      const bool has_text = std::any_of(names.begin(), names.end(), [](const std::string& n) {
        return n.rfind("text.", 0) == 0;
      });
      const bool has_vision = std::any_of(names.begin(), names.end(), [](const std::string& n) {
        return n.rfind("vision.", 0) == 0;
      });
      EXPECT_EQ(has_text, mode != config::FusionMode::image_only);
      EXPECT_EQ(has_vision, mode != config::FusionMode::text_only);
    }
  }
}

TEST(Model, AuxiliaryCountingHeadOnTheImageTokens) {
  auto c = tiny_config();
  c.train.aux.counting = 1;
  Model model = tasks::build_model(c, {30, 5, 4});
  const auto out = model(torch::randn({2, 3, 16, 16}), torch::randint(1, 30, {2, 6}));
  EXPECT_EQ(out.aux_presence.sizes(), torch::IntArrayRef({2, 4}));
  EXPECT_EQ(out.aux_counts.sizes(), torch::IntArrayRef({2, 4, 4}));
  EXPECT_TRUE(model->named_parameters().contains("aux_counting.presence.weight"));
  EXPECT_FALSE(
      tasks::build_model(c, {30, 5})(torch::randn({1, 3, 16, 16}), torch::randint(1, 30, {1, 6}))
          .aux_presence.defined());
  c.train.aux.counting = 0;  // the head exists only when its loss is asked for
  EXPECT_FALSE(
      tasks::build_model(c, {30, 5, 4})(torch::randn({1, 3, 16, 16}), torch::randint(1, 30, {1, 6}))
          .aux_presence.defined());
  c.train.aux.dense = 1;
  const auto dense = tasks::build_model(c, {30, 5, 4})(torch::randn({2, 3, 16, 16}),
                                                       torch::randint(1, 30, {2, 6}));
  EXPECT_EQ(dense.aux_dense.sizes(), torch::IntArrayRef({2, 4, 4}));  // 16 px / patch 8: 4 patches
  EXPECT_FALSE(dense.aux_locate.defined());
  c.train.aux.locate = 1;
  const auto locate = tasks::build_model(c, {30, 5, 4})(torch::randn({2, 3, 16, 16}),
                                                        torch::randint(1, 30, {2, 6}));
  EXPECT_EQ(locate.aux_locate.sizes(), torch::IntArrayRef({2, 2, 4}));  // leftmost, rightmost
}

// eval.precision bf16 (infer::Session sets compute_dtype): the products in bfloat16 under
// autocast, every output float32 and close to the fp32 one; gradients still reach the inputs
// (explain). Autocast runs on any CPU (emulated where it has no bf16 instructions).
TEST(Model, Bf16ComputeGivesFloatOutputsCloseToFp32) {
  auto c = tiny_config();
  c.train.aux.counting = 1;
  c.train.aux.dense = 1;
  torch::manual_seed(0);
  Model model = tasks::build_model(c, {30, 5, 4});
  model->eval();
  const auto images = torch::randn({2, 3, 16, 16});
  const auto ids = torch::randint(1, 30, {2, 6});
  const auto fp32 = model(images, ids);
  model->compute_dtype = torch::kBFloat16;
  const auto pixels = images.clone().requires_grad_(true);
  const auto bf16 = model(pixels, ids);
  for (const auto& [name, a, b] :
       std::vector<std::tuple<std::string, torch::Tensor, torch::Tensor>>{
           {"logits", fp32.at("logits"), bf16.at("logits")},
           {"pooled", fp32.pooled, bf16.pooled},
           {"aux_presence", fp32.aux_presence, bf16.aux_presence},
           {"aux_dense", fp32.aux_dense, bf16.aux_dense}}) {
    ASSERT_TRUE(b.defined()) << name;
    EXPECT_EQ(b.scalar_type(), torch::kFloat32) << name;
    EXPECT_TRUE(torch::allclose(a, b, 5e-2, 5e-2)) << name << ": " << (a - b).abs().max();
    EXPECT_FALSE(torch::equal(a, b)) << name << ": bf16 products round differently";
  }
  bf16.at("logits").sum().backward();
  ASSERT_TRUE(pixels.grad().defined());
  EXPECT_TRUE(torch::isfinite(pixels.grad()).all().item<bool>());
  model->compute_dtype = torch::kFloat32;
  EXPECT_TRUE(torch::equal(model(images, ids).at("logits"), fp32.at("logits")));
}

TEST(Model, SharedImagesGiveTheSameOutputAsRepeatedOnes) {
  Model model = tasks::build_model(tiny_config(), {30, 5});
  model->eval();
  const auto images = torch::randn({2, 3, 16, 16});
  const auto ids = torch::randint(1, 30, {3, 6});
  const auto index = torch::tensor({1, 0, 1}, torch::kLong);
  const auto shared = model->forward(images, ids, torch::Tensor(), torch::Tensor(), index);
  const auto repeated = model(images.index_select(0, index), ids);
  EXPECT_TRUE(torch::allclose(shared.at("logits"), repeated.at("logits"), 1e-5, 1e-6));
}

TEST(Model, ComponentsAreSizedFromTheEncoders) {
  auto c = tiny_config();
  c.model.vision.hidden = 24;
  c.model.vision.heads = 3;
  c.model.text.hidden = 12;
  c.model.text.heads = 2;
  Model model = tasks::build_model(c, {30, 5});
  EXPECT_EQ(model->fusion->options.image_dim(), 24);
  EXPECT_EQ(model->fusion->options.text_dim(), 12);
  EXPECT_EQ(model->fusion->image_proj->weight.sizes(), torch::IntArrayRef({16, 24}));
}

TEST(Model, DescribeListsComponentsWithParameterCounts) {
  Model model = tasks::build_model(tiny_config(), {30, 5});
  const std::string tree = describe_model(*model);
  EXPECT_NE(tree.find("vision"), std::string::npos) << tree;
  EXPECT_NE(tree.find("ViT"), std::string::npos) << tree;
  EXPECT_NE(tree.find("Bert"), std::string::npos) << tree;
  EXPECT_NE(tree.find("VqaHead"), std::string::npos) << tree;
  int64_t sum = 0;
  for (const auto& child : model->named_children()) sum += count_parameters(*child.value());
  EXPECT_EQ(sum, count_parameters(*model));
}

TEST(Model, FactoryRejectsMissingSizes) {
  EXPECT_THROW(tasks::build_model(tiny_config(), {0, 5}), std::invalid_argument);
  EXPECT_THROW(tasks::build_model(tiny_config(), {30, 0}), std::invalid_argument);
}

TEST(Model, MovesWithItsDevice) {
  Model model = tasks::build_model(tiny_config(), {30, 5});
  model->to(torch::kFloat64);
  const auto out =
      model(torch::randn({1, 3, 16, 16}, torch::kFloat64), torch::randint(1, 30, {1, 6}));
  EXPECT_EQ(out.at("logits").scalar_type(), torch::kFloat64);
}

}  // namespace
}  // namespace xmodal::models
