// eval::evaluate on a tiny scenes split with an untrained model: every example once, in data
// order, the loss the mean of the task's per-sample losses, the model left as it was found, and
// the metrics those of the predictions a plain forward pass gives.
#include "xmodal/eval/evaluator.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "../support/tiny_model.h"
#include "xmodal/config/loader.h"
#include "xmodal/data/scenes.h"
#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"
#include "xmodal/text/factory.h"

namespace xmodal::eval {
namespace {

using xmodal::testing::TempDir;

class Evaluator : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new TempDir();
    data::build_scenes(xmodal::testing::tiny_scenes(data_dir_->path() / "scenes", 4, 5, 1, 9));
  }
  static void TearDownTestSuite() {
    delete data_dir_;
    data_dir_ = nullptr;
  }

  static config::Config tiny(const std::string& task) {
    std::vector<std::string> sets = {"run.threads=1",
                                     "data.root=" + (data_dir_->path() / "scenes").string(),
                                     "data.image_size=32", "data.workers=0", "eval.batch_size=7"};
    const auto model = xmodal::testing::tiny_model_sets();
    sets.insert(sets.end(), model.begin(), model.end());
    return config::parse_config("task: " + task + "\n", "<test>", sets);
  }

  static TempDir* data_dir_;
};
TempDir* Evaluator::data_dir_ = nullptr;

// Evaluates `task` on the val split and checks the result against a plain pass over the same
// batches.
void check_against_a_plain_pass(const config::Config& c) {
  auto train = tasks::load_split(c, c.data.train_split);
  const bool vocabulary = tasks::task(c.task).vocabulary_from_training_split();
  auto val = std::make_shared<data::TaskData>(
      tasks::load_split(c, c.data.val_split, vocabulary ? &train.class_names : nullptr));
  std::vector<std::string> texts;
  for (const auto& e : train.examples) texts.insert(texts.end(), e.texts.begin(), e.texts.end());
  const auto tokenizer = text::make_tokenizer(c, texts);
  torch::manual_seed(5);
  auto model = tasks::build_model(
      c, {tokenizer->vocab_size(), static_cast<int64_t>(train.class_names.size()), 0});
  model->train();
  data::Loader loader(val, tokenizer, data::loader_options(c, false));
  const models::LossWeights weights{c.train.loss.presence_weight, c.train.loss.count_weight};

  const auto r = evaluate(model, *val, loader, train.class_names, weights, torch::kCPU);
  EXPECT_TRUE(model->is_training());  // restored
  ASSERT_EQ(r.examples, static_cast<int64_t>(val->examples.size()));
  EXPECT_EQ(r.predictions->rows(), r.examples);
  EXPECT_EQ(r.skipped, 0);

  // The same batches by hand, in eval mode.
  model->eval();
  torch::NoGradGuard no_grad;
  const auto& task = tasks::task(c.task);
  auto by_hand = task.evaluation(*val, train.class_names, config::VqaProtocol::official);
  double loss_sum = 0;
  std::vector<int64_t> order;
  loader.start(0);
  while (auto b = loader.next()) {
    const auto out = model->forward(b->images, b->input_ids, b->attention_mask, b->token_type_ids,
                                    b->image_index);
    loss_sum += task.loss(out, *b, torch::kCPU, weights).total.item<double>();
    by_hand->add(out, *b);
    order.insert(order.end(), b->indices.begin(), b->indices.end());
  }
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], static_cast<int64_t>(i));
  auto expected = by_hand->metrics();
  expected["loss"] = loss_sum / static_cast<double>(r.examples);
  ASSERT_EQ(r.metrics.size(), expected.size());
  for (const auto& [name, value] : expected) {
    if (std::isnan(value)) {
      EXPECT_TRUE(std::isnan(r.metrics.at(name))) << name;
    } else {
      EXPECT_NEAR(r.metrics.at(name), value, 1e-9 * (1 + std::abs(value))) << name;
    }
  }
  for (const auto& [name, mode] : config::task_metrics(c.task)) {
    EXPECT_TRUE(r.metrics.count(name)) << config::to_string(c.task) << " lacks " << name;
  }
}

TEST_F(Evaluator, VqaMatchesAPlainPass) { check_against_a_plain_pass(tiny("vqa")); }

TEST_F(Evaluator, CountingMatchesAPlainPass) {
  auto c = tiny("counting");
  c.model.head.max_count = 3;
  check_against_a_plain_pass(c);
}

TEST_F(Evaluator, ASecondEvaluationGivesTheSameFigures) {
  const auto c = tiny("vqa");
  auto train = tasks::load_split(c, c.data.train_split);
  auto val =
      std::make_shared<data::TaskData>(tasks::load_split(c, c.data.val_split, &train.class_names));
  const auto tokenizer = text::make_tokenizer(c, {"how many bags are there?"});
  auto model = tasks::build_model(
      c, {tokenizer->vocab_size(), static_cast<int64_t>(train.class_names.size()), 0});
  data::Loader loader(val, tokenizer, data::loader_options(c, false));
  const auto a = evaluate(model, *val, loader, train.class_names, {}, torch::kCPU);
  const auto b = evaluate(model, *val, loader, train.class_names, {}, torch::kCPU);
  EXPECT_EQ(a.metrics, b.metrics);
}

}  // namespace
}  // namespace xmodal::eval
