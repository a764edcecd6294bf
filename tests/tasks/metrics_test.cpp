// VQA accuracy as the official script computes it, and the counting metrics.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/retrieval.h"

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

// Ranks by hand: the wrong candidates scored at least as high as the best true one.
TEST(RetrievalMetrics, RanksCountWrongCandidatesAtOrAboveTheBestTrueOne) {
  const auto scores = torch::tensor({{0.9, 0.1, 0.5, 0.3},    // true 0: rank 0
                                     {0.9, 0.1, 0.5, 0.3},    // true 2: 0.9 above -> rank 1
                                     {0.2, 0.2, 0.2, 0.2},    // true 1, all tied -> rank 3
                                     {0.1, 0.8, 0.7, 0.8},    // true 2 and 3: best 0.8, tied
                                                              // with wrong 1 -> rank 1
                                     {0.5, 0.4, 0.3, 0.2}});  // no true candidate -> 4
  const auto truth =
      torch::tensor({{1, 0, 0, 0}, {0, 0, 1, 0}, {0, 1, 0, 0}, {0, 0, 1, 1}, {0, 0, 0, 0}})
          .to(torch::kBool);
  const auto ranks = retrieval_ranks(scores, truth);
  EXPECT_TRUE(torch::equal(ranks, torch::tensor({0, 1, 3, 1, 4}, torch::kLong))) << ranks;
  EXPECT_DOUBLE_EQ(recall_at(ranks, 1), 20.0);
  EXPECT_DOUBLE_EQ(recall_at(ranks, 2), 60.0);
  EXPECT_DOUBLE_EQ(recall_at(ranks, 5), 100.0);
}

// 4 texts of 2 images (texts 0, 1 of image 0; 2, 3 of image 1): image -> text takes the best
// of an image's texts; text -> image has one true image; ties count against the query.
TEST(RetrievalMetrics, RecallByTheKarpathyProtocol) {
  const auto sim = torch::tensor({{0.9, 0.1},    // text 0 -> image 0: rank 0
                                  {0.2, 0.8},    // text 1 -> image 0: rank 1
                                  {0.5, 0.5},    // text 2 -> image 1: tied -> rank 1
                                  {0.3, 0.6}});  // text 3 -> image 1: rank 0
  const auto m = recall_metrics(sim, {0, 0, 1, 1});
  EXPECT_DOUBLE_EQ(m.at("t2i_r1"), 50.0);
  EXPECT_DOUBLE_EQ(m.at("t2i_r5"), 100.0);
  // image 0: its texts score 0.9, 0.2; best 0.9 is first -> found at 1
  // image 1: its texts score 0.5, 0.6; best 0.6, but text 1 (0.8, image 0's) is above -> rank 1
  EXPECT_DOUBLE_EQ(m.at("i2t_r1"), 50.0);
  EXPECT_DOUBLE_EQ(m.at("i2t_r5"), 100.0);
  EXPECT_DOUBLE_EQ(m.at("rsum"), 50 + 100 + 100 + 50 + 100 + 100);
  // same content: images 0 and 1 hold the same articles -> everything is found at once
  const auto c = content_recall_metrics(sim, {0, 0, 1, 1}, {7, 7});
  EXPECT_DOUBLE_EQ(c.at("content_t2i_r1"), 100.0);
  EXPECT_DOUBLE_EQ(c.at("content_i2t_r1"), 100.0);
  const auto d = content_recall_metrics(sim, {0, 0, 1, 1}, {7, 8});
  EXPECT_DOUBLE_EQ(d.at("content_rsum"), m.at("rsum"));
}

}  // namespace
}  // namespace xmodal::tasks
