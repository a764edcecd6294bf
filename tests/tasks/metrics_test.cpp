// VQA accuracy as the official script computes it, and the counting metrics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "xmodal/tasks/metrics.h"

namespace xmodal::tasks {
namespace {

std::vector<std::string> answers(int n_a, const std::string& a, const std::string& b) {
  std::vector<std::string> out(static_cast<size_t>(n_a), a);
  out.resize(10, b);
  return out;
}

constexpr auto kLegacy = config::VqaProtocol::legacy;

TEST(VqaAccuracy, LeaveOneOutOverTenAnswers) {
  EXPECT_DOUBLE_EQ(vqa_accuracy("yes", answers(10, "yes", "")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("no", answers(10, "yes", "")), 0.0);
  // 3 of 10 say "2": a left-out "2" leaves 2 matches (2/3), a left-out "3" leaves 3 (1).
  EXPECT_NEAR(vqa_accuracy("2", answers(3, "2", "3")), 0.9, 1e-12);
  EXPECT_NEAR(vqa_accuracy("3", answers(3, "2", "3")), 1.0, 1e-12);
  // 1 of 10: only the nine subsets that keep it match once.
  EXPECT_NEAR(vqa_accuracy("2", answers(1, "2", "3")), 0.3, 1e-12);
  EXPECT_DOUBLE_EQ(vqa_accuracy("x", {}), 0.0);
}

// The current official rule (a013f00): both sides trimmed; both normalised only when the ten
// human answers differ. Cases checked against the official vqaEval.py itself.
TEST(VqaAccuracy, OfficialNormalisesOnlyWhenTheHumansDiffer) {
  EXPECT_NEAR(vqa_accuracy("  two\n", answers(3, "2", "3")), 0.9, 1e-12);
  EXPECT_NEAR(vqa_accuracy("the 3", answers(3, "2", "3")), 1.0, 1e-12);
  // Ten identical answers: compared as they are ("Yes", "yes." and "two" do not match).
  EXPECT_DOUBLE_EQ(vqa_accuracy("Yes", answers(10, "yes", "")), 0.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("yes.", answers(10, "yes", "")), 0.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("two", answers(10, "2", "")), 0.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("t-shirt", answers(10, "t-shirt", "")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("dog", answers(10, "the dog", "")), 0.0);
  // Differing answers: both through punctuation and digit/article steps.
  EXPECT_DOUBLE_EQ(vqa_accuracy("Yes", answers(5, "Yes", "yes")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("two", answers(4, "two", "2")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("a dog", answers(6, "a dog", "dog")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("none", answers(5, "none", "0")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("don't", answers(5, "dont", "x")), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("1 000", answers(5, "1,000", "1000")), 0.0);
  // A human answer with a leading space is trimmed first: the ten are then identical.
  auto spaced = answers(9, "yes", "");
  spaced.push_back(" yes");
  EXPECT_DOUBLE_EQ(vqa_accuracy("yes", spaced), 1.0);
}

// The rule before a013f00 (--protocol legacy): the prediction always normalised, the human
// answers only punctuation-processed, untrimmed, when they differ.
TEST(VqaAccuracy, LegacyRule) {
  EXPECT_NEAR(vqa_accuracy("  two\n", answers(3, "2", "3"), kLegacy), 0.9, 1e-12);
  EXPECT_DOUBLE_EQ(vqa_accuracy("two", answers(10, "2", ""), kLegacy), 1.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("Yes", answers(10, "yes", ""), kLegacy), 1.0);
  // Ten identical "t-shirt" can never be matched (the prediction always becomes "t shirt") ...
  EXPECT_DOUBLE_EQ(vqa_accuracy("t-shirt", answers(10, "t-shirt", ""), kLegacy), 0.0);
  EXPECT_DOUBLE_EQ(vqa_accuracy("t shirt", answers(10, "t shirt", ""), kLegacy), 1.0);
  // ... but 9 "t-shirt" and one "top" can.
  EXPECT_NEAR(vqa_accuracy("t-shirt", answers(9, "t-shirt", "top"), kLegacy), 1.0, 1e-12);
  // Number words in the human answers are not mapped: "two" there never equals a prediction.
  EXPECT_NEAR(vqa_accuracy("2", answers(3, "two", "2"), kLegacy), 1.0, 1e-12);
  EXPECT_NEAR(vqa_accuracy("two", answers(3, "two", "3"), kLegacy), 0.0, 1e-12);
  EXPECT_DOUBLE_EQ(vqa_accuracy("don't", answers(5, "dont", "x"), kLegacy), 0.0);
}

TEST(VqaAccuracy, MetricsPerAnswerType) {
  const auto m = vqa_metrics({1.0, 0.0, 0.5, 1.0}, {"yes/no", "yes/no", "number", "other"});
  EXPECT_DOUBLE_EQ(m.at("accuracy"), 0.625);
  EXPECT_DOUBLE_EQ(m.at("accuracy_yes_no"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("accuracy_number"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("accuracy_other"), 1.0);
  EXPECT_EQ(answer_type_key("yes/no"), "yes_no");
}

TEST(CountingMetrics, AveragePrecisionLikeSklearn) {
  EXPECT_NEAR(average_precision({0.9f, 0.8f, 0.7f, 0.6f}, {1, 0, 1, 0}), 0.5 + 0.5 * 2.0 / 3.0,
              1e-12);
  EXPECT_NEAR(average_precision({0.5f, 0.5f}, {1, 0}), 0.5, 1e-12);  // one tied threshold
  EXPECT_TRUE(std::isnan(average_precision({0.5f}, {0})));
}

TEST(CountingMetrics, CountsF1AndCrowd) {
  // Two images, two categories.
  const auto pred = torch::tensor({{1, 0}, {2, 3}}, torch::kInt64);
  const auto target = torch::tensor({{1, 0}, {1, 5}}, torch::kInt64);
  const auto prob = torch::tensor({{0.9f, 0.2f}, {0.8f, 0.3f}});
  auto crowd = torch::zeros({2, 2}, torch::kBool);
  auto s = counting_metrics(pred, prob, target, crowd);
  EXPECT_DOUBLE_EQ(s.metrics.at("accuracy"), 0.5);  // 2 of 4 counts right
  EXPECT_DOUBLE_EQ(s.metrics.at("exact_match"), 0.5);
  EXPECT_DOUBLE_EQ(s.metrics.at("mae"), 3.0 / 4.0);
  EXPECT_DOUBLE_EQ(s.metrics.at("rmse"), std::sqrt(5.0 / 4.0));
  // presence: category 0 tp 2; category 1 present once, predicted never -> fn 1.
  EXPECT_DOUBLE_EQ(s.metrics.at("f1_micro"), 2.0 * 2 / (2 * 2 + 0 + 1));
  EXPECT_DOUBLE_EQ(s.metrics.at("f1_macro"), (1.0 + 0.0) / 2);
  EXPECT_DOUBLE_EQ(s.metrics.at("map"), 1.0);  // both categories rank their positives first
  EXPECT_EQ(s.categories[1].support, 1);

  // A crowd region makes the count of (image 1, category 1) unknown: left out of count metrics.
  crowd[1][1] = true;
  s = counting_metrics(pred, prob, target, crowd);
  EXPECT_DOUBLE_EQ(s.metrics.at("accuracy"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.metrics.at("mae"), 1.0 / 3.0);
  EXPECT_DOUBLE_EQ(s.metrics.at("exact_match"), 0.5);
}

}  // namespace
}  // namespace xmodal::tasks
