#include "xmodal/models/heads.h"

#include <gtest/gtest.h>

#include "../support/fixtures.h"

namespace xmodal::models {
namespace {

using namespace xmodal::testing;

TEST(Heads, VqaHeadShapesNamesGradients) {
  torch::manual_seed(0);
  VqaHead head(VqaHeadOptions(8, 16, 7));
  const auto logits = head(torch::randn({3, 8}));
  EXPECT_EQ(logits.sizes(), torch::IntArrayRef({3, 7}));
  logits.sum().backward();
  EXPECT_EQ(params_without_grad(*head), std::vector<std::string>{});
  EXPECT_EQ(param_names(*head), (std::vector<std::string>{"fc1.weight", "fc1.bias", "norm.weight",
                                                          "norm.bias", "fc2.weight", "fc2.bias"}));
}

TEST(Heads, CountingHeadGivesPresenceAndCountLogits) {
  torch::manual_seed(0);
  CountingHead head(CountingHeadOptions(8, 16, 10, 4));
  const auto out = head(torch::randn({3, 8}));
  EXPECT_EQ(out.presence.sizes(), torch::IntArrayRef({3, 10}));
  EXPECT_EQ(out.counts.sizes(), torch::IntArrayRef({3, 10, 5}));
  (out.presence.sum() + out.counts.pow(2).sum()).backward();
  EXPECT_EQ(params_without_grad(*head), std::vector<std::string>{});
  EXPECT_THROW(CountingHead(CountingHeadOptions(8, 16, 0, 4)), c10::Error);
}

}  // namespace
}  // namespace xmodal::models
