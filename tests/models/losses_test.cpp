// The task losses against PyTorch (tests/data/models/losses.safetensors, made by
// scripts/make_loss_fixtures.py): values and gradients.
#include "xmodal/models/losses.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../support/fixtures.h"

namespace xmodal::models {
namespace {

using xmodal::testing::max_abs_diff;

class Losses : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    fixture_ = new auto(xmodal::testing::load_fixture("models/losses.safetensors"));
  }
  static void TearDownTestSuite() {
    delete fixture_;
    fixture_ = nullptr;
  }
  static const torch::Tensor& at(const std::string& name) { return fixture_->at(name); }
  // A leaf copy of a fixture input that collects gradients.
  static torch::Tensor input(const std::string& name) {
    return at(name).clone().requires_grad_(true);
  }
  static void expect_close(const torch::Tensor& got, const std::string& name) {
    ASSERT_EQ(got.sizes(), at(name).sizes()) << name;
    EXPECT_LT(max_abs_diff(got, at(name)), 1e-5 * (1 + at(name).abs().max().item<double>()))
        << name;
  }

 private:
  static inline std::map<std::string, torch::Tensor>* fixture_ = nullptr;
};

TEST_F(Losses, VqaIsBceOnSoftScoresSummedOverAnswersAndSamples) {
  auto logits = input("vqa.logits");
  const auto sums = vqa_loss(logits, at("vqa.targets"));
  expect_close(sums.total, "vqa.total");
  sums.total.backward();
  expect_close(logits.grad(), "vqa.grad.logits");
  EXPECT_THROW(vqa_loss(logits, at("vqa.targets").narrow(1, 0, 3)), std::invalid_argument);
}

TEST_F(Losses, CountingLeavesCrowdCountsOutAndWeighsItsParts) {
  auto presence = input("counting.presence");
  auto counts = input("counting.counts");
  const auto w = at("counting.weights");
  const LossWeights weights{w[0].item<double>(), w[1].item<double>()};
  const auto sums =
      counting_loss(presence, counts, at("counting.targets"), at("counting.crowd"), weights);
  expect_close(sums.total, "counting.total");
  expect_close(sums.presence, "counting.presence_part");
  expect_close(sums.count, "counting.count_part");
  sums.total.backward();
  expect_close(presence.grad(), "counting.grad.presence");
  expect_close(counts.grad(), "counting.grad.counts");

  // A crowd pair's count logits get no gradient at all; a known pair's do.
  const auto crowd = at("counting.crowd");
  ASSERT_TRUE(crowd[1][2].item<bool>());
  EXPECT_EQ(counts.grad()[1][2].abs().sum().item<double>(), 0.0);
  ASSERT_FALSE(crowd[0][0].item<bool>());
  EXPECT_GT(counts.grad()[0][0].abs().sum().item<double>(), 0.0);
  // Without crowd information every count is known: a larger count part.
  const auto all_known = counting_loss(presence, counts, at("counting.targets"), {}, weights);
  EXPECT_GT(all_known.count.item<double>(), sums.count.item<double>());
}

TEST_F(Losses, ClassifyIsCrossEntropySummedOverSamples) {
  auto logits = input("classify.logits");
  const auto sums = classify_loss(logits, at("classify.labels"));
  expect_close(sums.total, "classify.total");
  sums.total.backward();
  expect_close(logits.grad(), "classify.grad.logits");
}

TEST_F(Losses, DenseIsPatchBceSummedOverCategoriesAveragedOverPatches) {
  auto logits = input("dense.logits");
  const auto total = dense_loss(logits, at("dense.targets"));
  expect_close(total, "dense.total");
  total.backward();
  expect_close(logits.grad(), "dense.grad.logits");
}

TEST(LocateLoss, IsTheCrossEntropyOfBothEndsSummedLeavingOutMissingOnes) {
  torch::manual_seed(3);
  const auto logits = torch::randn({3, 2, 5});
  const auto targets = torch::tensor({{1, 4}, {-1, 2}, {0, 0}}, torch::kLong).view({3, 2});
  const auto logp = torch::log_softmax(logits, 2);
  double expected = 0;
  for (int64_t b = 0; b < 3; ++b) {
    for (int64_t end = 0; end < 2; ++end) {
      const int64_t t = targets[b][end].item<int64_t>();
      if (t >= 0) expected -= logp[b][end][t].item<double>();
    }
  }
  EXPECT_NEAR(locate_loss(logits, targets).item<double>(), expected, 1e-5);
  EXPECT_THROW(locate_loss(logits, targets.narrow(0, 0, 2)), c10::Error);
}

// The sum form is what makes accumulation exact: two halves add up to the whole batch.
TEST_F(Losses, SumsOfTwoHalvesEqualTheWholeBatch) {
  const auto logits = at("vqa.logits");
  const auto targets = at("vqa.targets");
  const auto whole = vqa_loss(logits, targets).total.item<double>();
  const auto halves = vqa_loss(logits.narrow(0, 0, 2), targets.narrow(0, 0, 2)).total +
                      vqa_loss(logits.narrow(0, 2, 3), targets.narrow(0, 2, 3)).total;
  EXPECT_NEAR(halves.item<double>(), whole, 1e-5 * whole);
}

TEST_F(Losses, ContrastiveIsClipsSymmetricInfoNceWithDistinctKeys) {
  auto images = input("itc.images");
  auto texts = input("itc.texts");
  const auto keys = torch::arange(6, torch::kLong);
  const auto rows = contrastive_loss_rows(images, texts, at("itc.scale"), keys, keys + 100);
  ASSERT_EQ(rows.sizes(), torch::IntArrayRef({6}));
  const auto total = rows.sum();
  expect_close(total, "itc.total");
  total.backward();
  expect_close(images.grad(), "itc.grad.images");
  expect_close(texts.grad(), "itc.grad.texts");
}

TEST_F(Losses, ContrastiveCountsAPairWithTheSameImageOrTextAsPositive) {
  auto images = input("itc.images");
  auto texts = input("itc.texts");
  const auto total = contrastive_loss_rows(images, texts, at("itc.scale"), at("itc_dup.image_keys"),
                                           at("itc_dup.text_keys"))
                         .sum();
  expect_close(total, "itc_dup.total");
  total.backward();
  expect_close(images.grad(), "itc_dup.grad.images");
  expect_close(texts.grad(), "itc_dup.grad.texts");
  EXPECT_THROW(contrastive_loss_rows(images, texts.narrow(0, 0, 5), at("itc.scale"),
                                     at("itc_dup.image_keys"), at("itc_dup.text_keys")),
               c10::Error);
}

TEST_F(Losses, ItmIsTwoWayCrossEntropyScaledToTheSamples) {
  auto logits = input("itm.logits");
  const auto total = itm_loss(logits, 4, 4);
  expect_close(total, "itm.total");
  total.backward();
  expect_close(logits.grad(), "itm.grad.logits");
}

// Knowledge distillation (train.distill) against torch.nn.functional's BCE and KL forms.
TEST_F(Losses, DistillationTermsEqualPyTorchsBceAndKlTimesTSquared) {
  const double t = at("distill.temperature").item<double>();
  auto s = input("distill.sigmoid.student");
  auto total = distill_sigmoid(s, at("distill.sigmoid.teacher"), t);
  expect_close(total, "distill.sigmoid.total");
  total.backward();
  expect_close(s.grad(), "distill.sigmoid.grad");

  s = input("distill.softmax.student");
  total = distill_softmax(s, at("distill.softmax.teacher"), t);
  expect_close(total, "distill.softmax.total");
  total.backward();
  expect_close(s.grad(), "distill.softmax.grad");

  auto presence = input("distill.counting.presence_student");
  auto counts = input("distill.counting.counts_student");
  total = distill_sigmoid(presence, at("distill.counting.presence_teacher"), t, 3) +
          distill_softmax(counts, at("distill.counting.counts_teacher"), t, 3);
  expect_close(total, "distill.counting.total");
  total.backward();
  expect_close(presence.grad(), "distill.counting.grad.presence");
  expect_close(counts.grad(), "distill.counting.grad.counts");

  s = input("distill.similarity.student");
  total = distill_similarity(s, at("distill.similarity.teacher"), t);
  expect_close(total, "distill.similarity.total");
  total.backward();
  expect_close(s.grad(), "distill.similarity.grad");
}

TEST_F(Losses, DistillationOfEqualOutputsHasNoGradientAndShapesMustAgree) {
  auto s = input("distill.softmax.student");
  const auto same = distill_softmax(s, s.detach(), 2.0);
  EXPECT_LT(same.abs().item<double>(), 1e-5);  // KL of a distribution with itself
  same.backward();
  EXPECT_LT(s.grad().abs().max().item<double>(), 1e-6);
  EXPECT_THROW(distill_softmax(s, s.detach().narrow(1, 0, 3), 2.0), std::invalid_argument);
  EXPECT_THROW(distill_sigmoid(s, torch::Tensor(), 2.0), std::invalid_argument);
}

TEST(DistillFeatures, MeanSquaredDifferencePerSampleSummed) {
  // two samples of 2 tokens x 2 dims: differences 1 everywhere in sample 0, (0, 0, 0, 2) in 1
  auto s = torch::tensor({1.0, 1.0, 1.0, 1.0, 0.0, 0.0, 0.0, 2.0}).reshape({2, 2, 2});
  s.set_requires_grad(true);
  const auto t = torch::zeros({2, 2, 2});
  const auto loss = distill_features(s, t);
  EXPECT_DOUBLE_EQ(loss.item<double>(), 1.0 + 4.0 / 4);
  loss.backward();
  // d/ds of mean over 4 values of s^2 = s / 2; no gradient reaches the teacher
  EXPECT_TRUE(torch::allclose(s.grad(), s.detach() / 2));
  EXPECT_THROW(distill_features(s, torch::zeros({2, 3, 2})), std::invalid_argument);
}

}  // namespace
}  // namespace xmodal::models
