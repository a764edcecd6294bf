// AdamW, parameter groups, gradient clipping and the learning-rate schedule.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"
#include "xmodal/train/optimizer.h"

namespace xmodal::train {
namespace {

TEST(LrSchedule, WarmupThenDecayAtChosenSteps) {
  LrSchedule s{config::Schedule::cosine, 100, 10};
  EXPECT_DOUBLE_EQ(s.factor(1), 0.1);
  EXPECT_DOUBLE_EQ(s.factor(5), 0.5);
  EXPECT_DOUBLE_EQ(s.factor(10), 1.0);
  EXPECT_NEAR(s.factor(55), 0.5, 1e-12);  // half-way through the decay
  EXPECT_NEAR(s.factor(100), 0.0, 1e-12);
  EXPECT_NEAR(s.factor(32), 0.5 * (1 + std::cos(M_PI * 22.0 / 90.0)), 1e-12);

  LrSchedule linear{config::Schedule::linear, 100, 10};
  EXPECT_DOUBLE_EQ(linear.factor(10), 1.0);
  EXPECT_NEAR(linear.factor(55), 0.5, 1e-12);
  EXPECT_NEAR(linear.factor(91), 0.1, 1e-12);

  LrSchedule constant{config::Schedule::constant, 100, 4};
  EXPECT_DOUBLE_EQ(constant.factor(2), 0.5);
  EXPECT_DOUBLE_EQ(constant.factor(99), 1.0);

  LrSchedule none{config::Schedule::linear, 4, 0};
  EXPECT_DOUBLE_EQ(none.factor(1), 0.75);
  EXPECT_DOUBLE_EQ(none.factor(4), 0.0);
  EXPECT_DOUBLE_EQ(none.factor(9), 0.0);  // past the end keeps the final value
}

TEST(LrSchedule, WarmupFromRatioOrSteps) {
  EXPECT_EQ(LrSchedule::warmup_from(0.1, 1000), 100);
  EXPECT_EQ(LrSchedule::warmup_from(0.1, 15), 2);  // rounded up
  EXPECT_EQ(LrSchedule::warmup_from(0.0, 15), 0);
  EXPECT_EQ(LrSchedule::warmup_from(250, 1000), 250);
  EXPECT_EQ(LrSchedule::warmup_from(1, 1000), 1);
}

TEST(ParamGroups, NoDecayOnBiasesNormsEmbeddingsAndHeadMultiplier) {
  config::Config c;
  c.model.vision = {16, 16, 1, 2, 32, 0.0, ""};
  c.model.text.hidden = 16;
  c.model.text.layers = 1;
  c.model.text.heads = 2;
  c.model.text.intermediate = 32;
  c.model.fusion.hidden = 16;
  c.model.fusion.layers = 1;
  c.model.fusion.heads = 2;
  c.model.fusion.mlp_dim = 32;
  c.model.head.hidden = 8;
  c.data.image_size = 32;
  auto model = tasks::build_model(c, {20, 5});
  const auto groups = make_param_groups(*model, 0.05, {0.5, 1.0, 2.0, 10.0});
  std::map<std::string, const ParamGroup*> by_param;
  for (const auto& g : groups) {
    for (const auto& n : g.names) by_param[n] = &g;
  }
  EXPECT_EQ(by_param.size(), model->named_parameters().size());
  const auto group_of = [&](const std::string& n) { return by_param.at(n)->name; };
  EXPECT_EQ(group_of("vision.patch_embedding.weight"), "vision");
  EXPECT_EQ(group_of("vision.patch_embedding.bias"), "vision_no_decay");
  EXPECT_EQ(group_of("vision.cls_token"), "vision_no_decay");
  EXPECT_EQ(group_of("vision.position_embedding"), "vision_no_decay");
  EXPECT_EQ(group_of("vision.layers.0.norm1.weight"), "vision_no_decay");
  EXPECT_EQ(group_of("vision.layers.0.attention.qkv.weight"), "vision");
  EXPECT_EQ(group_of("text.embeddings.word.weight"), "text_no_decay");
  EXPECT_EQ(group_of("fusion.type_embedding.weight"), "fusion_no_decay");
  EXPECT_EQ(group_of("head.fc1.weight"), "head");
  EXPECT_EQ(group_of("head.fc1.bias"), "head_no_decay");
  EXPECT_DOUBLE_EQ(by_param.at("head.fc1.weight")->lr_mult, 10.0);
  EXPECT_DOUBLE_EQ(by_param.at("head.fc1.weight")->weight_decay, 0.05);
  EXPECT_DOUBLE_EQ(by_param.at("vision.cls_token")->weight_decay, 0.0);
  EXPECT_DOUBLE_EQ(by_param.at("vision.cls_token")->lr_mult, 0.5);
  EXPECT_DOUBLE_EQ(by_param.at("text.embeddings.word.weight")->lr_mult, 1.0);
  EXPECT_DOUBLE_EQ(by_param.at("fusion.type_embedding.weight")->lr_mult, 2.0);
  EXPECT_EQ(component_of("aux_dense.weight"), "head");
}

// Our AdamW against LibTorch's own torch::optim::AdamW (the C++ port of torch.optim.AdamW).
TEST(AdamW, MatchesLibTorchAdamWOverSteps) {
  torch::manual_seed(3);
  auto w = torch::randn({7, 5}, torch::requires_grad());
  auto ref = w.detach().clone().requires_grad_(true);
  ParamGroup g{"decay", 1.0, 0.1, {"w"}, {w}};
  AdamW ours({g});
  torch::optim::AdamW theirs({ref}, torch::optim::AdamWOptions(1e-2).weight_decay(0.1));
  for (int step = 0; step < 20; ++step) {
    const auto x = torch::randn({5, 3});
    (w.matmul(x).pow(2).sum()).backward();
    (ref.matmul(x).pow(2).sum()).backward();
    ours.step(1e-2);
    ours.zero_grad();
    theirs.step();
    theirs.zero_grad();
  }
  EXPECT_TRUE(torch::allclose(w, ref, 1e-6, 1e-7)) << (w - ref).abs().max().item<float>();
}

TEST(AdamW, StateRoundTripsAndContinuesIdentically) {
  torch::manual_seed(1);
  auto make = [] { return torch::randn({4, 3}).requires_grad_(true); };
  auto a = make();
  auto b = a.detach().clone().requires_grad_(true);
  AdamW oa({ParamGroup{"decay", 1.0, 0.01, {"p"}, {a}}});
  for (int i = 0; i < 3; ++i) {
    a.pow(3).sum().backward();
    oa.step(0.1);
    oa.zero_grad();
  }
  {
    torch::NoGradGuard ng;
    b.copy_(a);
  }
  AdamW ob({ParamGroup{"decay", 1.0, 0.01, {"p"}, {b}}});
  const auto state = oa.state();
  EXPECT_EQ(state.size(), 3u);
  EXPECT_EQ(state.at("step/p").item<int64_t>(), 3);
  ob.load_state(state);
  for (auto* pair : {&oa, &ob}) {
    auto& p = pair == &oa ? a : b;
    p.pow(3).sum().backward();
    pair->step(0.1);
  }
  EXPECT_TRUE(torch::equal(a, b));

  auto bad = state;
  bad["exp_avg/p"] = torch::zeros({3, 4});
  EXPECT_THROW(ob.load_state(bad), std::runtime_error);
  bad = state;
  bad["exp_avg/q"] = torch::zeros({4, 3});
  EXPECT_THROW(ob.load_state(bad), std::runtime_error);
}

TEST(ClipGradNorm, ScalesToTheGlobalNorm) {
  auto a = torch::zeros({2}, torch::requires_grad());
  auto b = torch::zeros({1}, torch::requires_grad());
  a.mutable_grad() = torch::tensor({3.0f, 0.0f});
  b.mutable_grad() = torch::tensor({4.0f});
  EXPECT_NEAR(clip_grad_norm({a, b}, 1.0), 5.0, 1e-9);
  EXPECT_NEAR(a.grad()[0].item<float>(), 0.6f, 1e-6);
  EXPECT_NEAR(b.grad()[0].item<float>(), 0.8f, 1e-6);
  EXPECT_NEAR(clip_grad_norm({a, b}, 10.0), 1.0, 1e-5);  // below the limit: unchanged
  EXPECT_NEAR(b.grad()[0].item<float>(), 0.8f, 1e-6);
}

}  // namespace
}  // namespace xmodal::train
