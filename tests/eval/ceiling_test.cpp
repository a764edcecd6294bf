#include "xmodal/eval/ceiling.h"

#include <gtest/gtest.h>

#include "xmodal/core/error.h"
#include "xmodal/data/scenes.h"
#include "xmodal/infer/predictor.h"

#include "../support/checkpoints.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"

namespace xmodal::eval {
namespace {

using xmodal::testing::TempDir;

TEST(Ceiling, ReasoningFollowsTheThreeTemplates) {
  // t-shirt 0, trousers 1, ankle boot 9; centres 30, 10, 10 (a tie: the first one is leftmost)
  const std::vector<Article> a = {{0, 30, 5}, {1, 10, 5}, {1, 10, 9}, {9, 50, 5}};
  EXPECT_EQ(scenes_answer("how many trousers are there?", a), "2");
  EXPECT_EQ(scenes_answer("how many t-shirts are there?", a), "1");
  EXPECT_EQ(scenes_answer("how many bags are there?", a), "0");
  EXPECT_EQ(scenes_answer("is there an ankle boot?", a), "yes");
  EXPECT_EQ(scenes_answer("is there a dress?", a), "no");
  EXPECT_EQ(scenes_answer("what is the leftmost item?", a), "trousers");
  EXPECT_EQ(scenes_answer("what is the rightmost item?", a), "ankle boot");
  // answers are normalised as the scenes' are ("t-shirt" -> "t shirt")
  EXPECT_EQ(scenes_answer("what is the leftmost item?", {{0, 3, 3}}), "t shirt");
  EXPECT_EQ(scenes_answer("how many cats are there?", a), "");
  EXPECT_EQ(scenes_answer("what colour is it?", a), "");
  EXPECT_EQ(scenes_answer("what is the leftmost item?", {}), "");
}

TEST(Ceiling, TheTrueLabelsAnswerEveryQuestionOfARealScenesSet) {
  // Exact reasoning over the true labels must reproduce every answer the generator wrote.
  TempDir dir;
  auto o = xmodal::testing::tiny_scenes(dir.path() / "scenes", 4, 2, 40, 17);
  o.max_items = 6;
  data::build_scenes(o);
  data::BadInputPolicy policy;
  const auto coco = data::read_coco(o.out, "test", policy, false);
  const auto vqa = data::read_vqa(o.out, "test", policy);
  std::vector<std::vector<int>> truth, wrong;
  int64_t objects = 0;
  for (const auto& image : coco.images) {
    truth.emplace_back();
    for (const auto& object : image.objects) truth.back().push_back(object.category);
    objects += static_cast<int64_t>(image.objects.size());
  }
  const auto r = ceiling_from_labels(coco, vqa, truth);
  EXPECT_EQ(r.questions, 240);
  EXPECT_EQ(r.unanswerable, 0);
  EXPECT_EQ(r.articles, objects);
  EXPECT_EQ(r.article_accuracy, 1.0);
  for (const char* key : {"accuracy", "accuracy_yes_no", "accuracy_number", "accuracy_other"}) {
    EXPECT_EQ(r.metrics.at(key), 1.0) << key;
  }
  // Every article taken for the next category: every "other" question goes wrong.
  wrong = truth;
  for (auto& labels : wrong) {
    for (int& l : labels) l = (l + 1) % 10;
  }
  const auto w = ceiling_from_labels(coco, vqa, wrong);
  EXPECT_EQ(w.article_accuracy, 0.0);
  EXPECT_EQ(w.metrics.at("accuracy_other"), 0.0);
  EXPECT_LT(w.metrics.at("accuracy"), 0.5);
  EXPECT_EQ(w.confusion[0][1] + w.confusion[0][0], r.confusion[0][0]);
  EXPECT_NE(format_ceiling(w).find("| t-shirt |"), std::string::npos);
  wrong.pop_back();
  EXPECT_THROW(ceiling_from_labels(coco, vqa, wrong), std::invalid_argument);
}

TEST(Ceiling, TheTextPriorAnswersEachQuestionWithItsMostFrequentTrainingAnswer) {
  const auto q = [](const std::string& text, const std::string& answer, const std::string& type) {
    data::VqaQuestion v;
    v.question = text;
    v.multiple_choice_answer = answer;
    v.answers.assign(10, answer);
    v.answer_type = type;
    return v;
  };
  data::VqaSet train, test;
  train.questions = {q("is there a bag?", "no", "yes/no"), q("is there a bag?", "no", "yes/no"),
                     q("is there a bag?", "yes", "yes/no"), q("how many bags?", "1", "number"),
                     q("is there a coat?", "yes", "yes/no")};
  test.questions = {q("is there a bag?", "no", "yes/no"), q("is there a bag?", "yes", "yes/no"),
                    q("how many bags?", "2", "number"),
                    // never seen: the most frequent yes/no answer ("no", 2 of 4)
                    q("is there a hat?", "no", "yes/no")};
  const auto p = text_prior(train, test);
  EXPECT_DOUBLE_EQ(p.at("accuracy_yes_no"), 2.0 / 3.0);
  EXPECT_DOUBLE_EQ(p.at("accuracy_number"), 0.0);
  EXPECT_DOUBLE_EQ(p.at("accuracy"), 0.5);
}

TEST(Ceiling, PerceptionIsScoredPerSceneAndCategory) {
  data::CocoSet coco;
  coco.categories.resize(2);
  coco.images.resize(2);
  coco.images[0].counts = {2, 0};
  coco.images[1].counts = {0, 1};
  const auto truth = score_perception(coco, {{1, 0}, {0, 1}}, {{2, 0}, {0, 1}});
  EXPECT_EQ(truth.pairs, 4);
  EXPECT_EQ(truth.presence, 1.0);
  EXPECT_EQ(truth.count, 1.0);
  // "there" everywhere, one count off, one unanswered
  const auto yes = score_perception(coco, {{1, 1}, {1, -1}}, {{1, 0}, {-1, 1}});
  EXPECT_EQ(yes.presence, 0.25);  // only image 0's first category
  EXPECT_EQ(yes.recall, 0.5);     // image 1's second: no answer
  EXPECT_EQ(yes.specificity, 0.0);
  EXPECT_EQ(yes.count, 0.5);
  EXPECT_THROW(score_perception(coco, {{1, 0}}, {{2, 0}}), std::invalid_argument);
}

TEST(Ceiling, AModelsPerceptionIsItsOwnAnswersToTheScenesQuestions) {
  // Batched answers land where they belong: the same as asking each question on its own.
  TempDir dir;
  const auto o = xmodal::testing::tiny_scenes(dir.path() / "scenes", 8, 2, 3, 5);
  data::build_scenes(o);
  const std::string ckpt =
      xmodal::testing::untrained_checkpoint("vqa", (dir.path() / "run").string(), o.out);
  data::BadInputPolicy policy;
  const auto coco = data::read_coco(o.out, "test", policy, false);
  const auto got = model_perception(ckpt, coco, /*batch_size=*/7);
  EXPECT_EQ(got.pairs, static_cast<int64_t>(coco.images.size()) * 10);

  infer::PredictorOptions po;
  po.checkpoint = ckpt;
  po.top_k = 1;
  infer::Predictor predictor(po);
  std::vector<std::vector<int>> present(coco.images.size()), counts(coco.images.size());
  for (size_t i = 0; i < coco.images.size(); ++i) {
    for (int c = 0; c < 10; ++c) {
      const auto one = [&](const std::string& q) {
        return predictor.predict({{coco.images[i].path, q}}).at(0).answer.classes.at(0).name;
      };
      const std::string is = one(data::presence_question(c));
      present[i].push_back(is == "yes" ? 1 : is == "no" ? 0 : -1);
      const std::string n = one(data::count_question(c));
      const bool number = !n.empty() && n.find_first_not_of("0123456789") == std::string::npos;
      counts[i].push_back(number ? std::stoi(n) : -1);
    }
  }
  const auto want = score_perception(coco, present, counts);
  EXPECT_DOUBLE_EQ(got.presence, want.presence);
  EXPECT_DOUBLE_EQ(got.count, want.count);
  EXPECT_DOUBLE_EQ(got.recall, want.recall);

  // a checkpoint of another task is refused, naming the option
  const std::string counting =
      xmodal::testing::untrained_checkpoint("counting", (dir.path() / "c").string(), o.out);
  EXPECT_THROW(model_perception(counting, coco, 8), OptionError);
}

}  // namespace
}  // namespace xmodal::eval
