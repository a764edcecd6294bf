// The relevance rules of infer/explain.h on hand-made attention maps.
#include "xmodal/infer/explain.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace xmodal::infer {
namespace {

torch::Tensor t(std::vector<double> v, std::vector<int64_t> shape) {
  return torch::tensor(v, torch::kFloat64).reshape(shape);
}

TEST(ExplainRules, RolloutMixesTheResidualAndMultiplies) {
  // one head attending 0 -> 1 only, 1 -> 1
  const auto a = t({0, 1, 0, 1}, {1, 2, 2});
  const auto one = rollout_relevance({{a, {}}}, 2);
  // 0.5 A + 0.5 I = [[0.5, 0.5], [0, 1]]
  EXPECT_TRUE(torch::allclose(one, t({0.5, 0.5, 0, 1}, {2, 2})));
  const auto two = rollout_relevance({{a, {}}, {a, {}}}, 2);
  EXPECT_TRUE(torch::allclose(two, t({0.25, 0.75, 0, 1}, {2, 2})));
  EXPECT_TRUE(torch::allclose(rollout_relevance({}, 3), torch::eye(3, torch::kFloat64)));
  EXPECT_THROW(rollout_relevance({{a, {}}}, 3), std::invalid_argument);
}

TEST(ExplainRules, CheferWeighsByThePositiveGradient) {
  // two heads; the gradient keeps head 0's attention to token 1 and removes the rest
  const auto a = t({0.5, 0.5, 0, 1, /*head 1*/ 1, 0, 0, 1}, {2, 2, 2});
  const auto g = t({-1, 2, 0, 0, /*head 1*/ -3, 0, 0, 0}, {2, 2, 2});
  const auto r = chefer_relevance({{a, g}}, 2);
  // mean over heads of (g * a)^+ = [[0, 0.5], [0, 0]]; R = I + that
  EXPECT_TRUE(torch::allclose(r, t({1, 0.5, 0, 1}, {2, 2})));
  // a second layer: R += A2 R
  const auto r2 = chefer_relevance({{a, g}, {a, g}}, 2);
  EXPECT_TRUE(torch::allclose(r2, t({1, 1.0, 0, 1}, {2, 2})));
  EXPECT_THROW(chefer_relevance({{a, {}}}, 2), std::runtime_error);
}

TEST(ExplainRules, SelfRelevanceIsNormalisedBesideTheIdentity) {
  const auto r = t({1.5, 1.5, 0, 1}, {2, 2});
  // R - I = [[0.5, 1.5], [0, 0]] -> rows sum to 1 -> [[0.25, 0.75], [0, 0]] + I
  EXPECT_TRUE(torch::allclose(normalize_self_relevance(r), t({1.25, 0.75, 0, 1}, {2, 2})));
}

TEST(ExplainRules, AKeyNoOneAttendsToGetsNoRelevance) {
  // token 2 is masked: every row gives it probability 0
  const auto a = t({0.5, 0.5, 0, 0.2, 0.8, 0, 0.3, 0.7, 0}, {1, 3, 3});
  const auto g = torch::ones({1, 3, 3}, torch::kFloat64);
  const auto chefer = chefer_relevance({{a, g}, {a, g}}, 3);
  const auto rollout = rollout_relevance({{a, {}}, {a, {}}}, 3);
  EXPECT_EQ(chefer[0][2].item<double>(), 0.0);
  EXPECT_EQ(rollout[0][2].item<double>(), 0.0);
  EXPECT_EQ(normalize_self_relevance(chefer)[0][2].item<double>(), 0.0);
}

}  // namespace
}  // namespace xmodal::infer
