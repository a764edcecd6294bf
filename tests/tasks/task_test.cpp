// The task units (lib/xmodal/tasks/) on outputs whose predictions are known: the metrics they
// give, the result files, tables and predict answers they write, and the loss they dispatch to.
#include "xmodal/tasks/task.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include "../support/predictions.h"
#include "../support/temp_dir.h"
#include "xmodal/infer/json.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/classify.h"
#include "xmodal/tasks/counting.h"
#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/vqa.h"

namespace xmodal::tasks {
namespace {

using nlohmann::json;
using xmodal::testing::TempDir;

data::Example example(int64_t id) {
  data::Example e;
  e.id = id;
  e.image_path = "img" + std::to_string(id) + ".png";
  return e;
}

// One batch holding every example of `data`, in order, with `targets`.
data::Batch whole_batch(const data::TaskData& data, data::Targets targets) {
  data::Batch b;
  for (size_t i = 0; i < data.examples.size(); ++i) {
    b.ids.push_back(data.examples[i].id);
    b.indices.push_back(static_cast<int64_t>(i));
  }
  b.targets = std::move(targets);
  return b;
}

json read_json(const std::string& path) { return json::parse(io::read_file(path)); }

std::vector<json> read_jsonl(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(io::read_file(path));
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

TEST(Tasks, EveryConfigTaskIsRegistered) {
  for (const auto id : {config::Task::vqa, config::Task::counting, config::Task::classify}) {
    EXPECT_EQ(task(id).id(), id);
  }
  EXPECT_TRUE(task(config::Task::vqa).vocabulary_from_training_split());
  EXPECT_FALSE(task(config::Task::counting).vocabulary_from_training_split());
  EXPECT_FALSE(task(config::Task::classify).reads_text());
  EXPECT_TRUE(task(config::Task::counting).reads_text());
}

TEST(Tasks, AMissingOutputOrTargetIsNamed) {
  models::ModelOutput out;
  out.outputs["presence"] = torch::zeros({1, 2});
  const auto message = [](const auto& call) {
    try {
      call();
    } catch (const std::logic_error& e) {
      return std::string(e.what());
    }
    return std::string("(nothing thrown)");
  };
  EXPECT_FALSE(out.get("logits").defined());
  EXPECT_NE(message([&] { out.at("logits"); }).find("'logits'"), std::string::npos);
  EXPECT_NO_THROW(out.at("presence"));
  data::Batch batch;
  EXPECT_NE(message([&] { batch.target(kVqaScores); }).find("'scores'"), std::string::npos);
  // an example of another task's annotation
  data::Example e = example(3);
  e.annotation = std::make_shared<ClassifyAnnotation>();
  EXPECT_NE(message([&] { data::annotation_of<VqaAnnotation>(e); }).find("example 3"),
            std::string::npos);
}

TEST(Tasks, VqaScoresTheTopAnswerWithTheOfficialAccuracy) {
  data::TaskData d;
  d.task = config::Task::vqa;
  d.class_names = {"yes", "no", "2"};
  for (int64_t id : {11, 12, 13}) d.examples.push_back(example(id));
  const auto annotate = [&](size_t i, std::vector<std::string> answers, std::string type) {
    auto a = std::make_shared<VqaAnnotation>();
    a->answers = std::move(answers);
    a->answer_type = std::move(type);
    d.examples[i].annotation = std::move(a);
  };
  annotate(0, std::vector<std::string>(10, "yes"), "yes/no");
  annotate(1, {"no", "no", "no", "yes", "yes", "yes", "yes", "yes", "yes", "yes"}, "yes/no");
  annotate(2, std::vector<std::string>(10, "2"), "number");
  models::ModelOutput out;
  out.outputs["logits"] =
      torch::tensor({{3.0f, 0.0f, -1.0f}, {0.0f, 2.0f, 1.0f}, {1.0f, 0.0f, 0.5f}});
  const auto targets = torch::zeros({3, 3});
  const Task& vqa = task(config::Task::vqa);
  auto e = vqa.evaluation(d, d.class_names, config::VqaProtocol::official);
  e->add(out, whole_batch(d, {{kVqaScores, targets}}));
  EXPECT_EQ(e->rows(), 3);
  const auto m = e->metrics();
  // "no" matches 3 of 10 humans: the mean over the 10 leave-one-out subsets is 0.9.
  EXPECT_NEAR(m.at("accuracy"), (1.0 + 0.9 + 0.0) / 3, 1e-12);
  EXPECT_NEAR(m.at("accuracy_yes_no"), 0.95, 1e-12);
  EXPECT_EQ(m.at("accuracy_number"), 0.0);

  TempDir dir;
  json summary = json::object();
  e->write(dir.path().string(), summary);
  const auto results = read_json((dir.path() / "results.json").string());
  EXPECT_EQ(results, json::parse(R"([{"question_id":11,"answer":"yes"},
                                     {"question_id":12,"answer":"no"},
                                     {"question_id":13,"answer":"yes"}])"));
  auto with_loss = m;
  with_loss["loss"] = 0.5;
  const std::string table = e->table(with_loss);
  EXPECT_NE(table.find("| overall          |    63.33 |"), std::string::npos) << table;
  EXPECT_NE(table.find("(3 questions, loss 0.5000)"), std::string::npos) << table;

  const json answer = infer::to_json(vqa.answer(out, 1, d.class_names, 2));
  ASSERT_EQ(answer["answers"].size(), 2u);
  EXPECT_EQ(answer["answers"][0]["answer"], "no");
  EXPECT_NEAR(answer["answers"][0]["probability"].get<double>(), 1 / (1 + std::exp(-2.0)), 1e-6);
  EXPECT_EQ(answer["answers"][1]["answer"], "2");

  const auto loss = vqa.loss(out, whole_batch(d, {{kVqaScores, targets}}), torch::kCPU, {});
  EXPECT_TRUE(torch::equal(loss.total, models::vqa_loss(out.at("logits"), targets).total));
}

TEST(Tasks, VqaWithoutAnnotationsWritesResultsOnly) {
  data::TaskData d;
  d.task = config::Task::vqa;
  d.has_targets = false;
  d.class_names = {"yes", "no"};
  d.examples = {example(5)};
  models::ModelOutput out;
  out.outputs["logits"] = torch::tensor({{0.0f, 1.0f}});
  auto e = task(config::Task::vqa).evaluation(d, d.class_names, config::VqaProtocol::official);
  e->add(out, whole_batch(d, {}));
  EXPECT_TRUE(e->metrics().empty());
  EXPECT_EQ(e->table({}), "1 questions answered (no annotations: results only)\n");
}

TEST(Tasks, CountingPredictsEveryCategoryAndLeavesCrowdCountsOut) {
  data::TaskData d;
  d.task = config::Task::counting;
  d.class_names = {"shirt", "bag"};
  d.examples = {example(1), example(2)};
  models::ModelOutput out;
  out.outputs["presence"] = torch::tensor({{4.0f, -4.0f}, {4.0f, 4.0f}});
  // argmax counts: [[1, 0], [2, 1]]
  out.outputs["counts"] = torch::tensor(
      {{{0.0f, 5.0f, 0.0f}, {5.0f, 0.0f, 0.0f}}, {{0.0f, 0.0f, 5.0f}, {0.0f, 5.0f, 0.0f}}});
  const auto targets = torch::tensor({{1, 0}, {2, 2}}, torch::kInt64);
  // image 2's bags: unknown
  const auto crowd = torch::tensor({{false, false}, {false, true}});
  auto batch = whole_batch(d, {{kCountingCounts, targets}, {kCountingCrowd, crowd}});
  const Task& counting = task(config::Task::counting);
  auto e = counting.evaluation(d, d.class_names, config::VqaProtocol::official);
  e->add(out, batch);
  const auto m = e->metrics();
  EXPECT_EQ(m.at("accuracy"), 1.0);  // the one wrong count is a crowd one
  const auto direct = counting_metrics(torch::tensor({{1, 0}, {2, 1}}, torch::kInt64),
                                       torch::sigmoid(out.at("presence")), targets, crowd);
  EXPECT_EQ(m, direct.metrics);

  TempDir dir;
  json summary = json::object();
  e->write(dir.path().string(), summary);
  const auto lines = read_jsonl((dir.path() / "predictions.jsonl").string());
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1]["image_id"], 2);
  EXPECT_EQ(lines[1]["counts"], json::parse(R"({"shirt": 2, "bag": 1})"));
  ASSERT_EQ(summary["per_category"].size(), 2u);
  EXPECT_EQ(summary["per_category"][1]["category"], "bag");

  // every category, whatever top_k
  const json answer = infer::to_json(counting.answer(out, 0, d.class_names, 1));
  ASSERT_EQ(answer["categories"].size(), 2u);
  EXPECT_EQ(answer["categories"][0]["category"], "shirt");
  EXPECT_EQ(answer["categories"][0]["count"], 1);

  const models::LossWeights weights{0.5, 2.0};
  const auto loss = counting.loss(out, batch, torch::kCPU, weights);
  EXPECT_TRUE(torch::equal(
      loss.total,
      models::counting_loss(out.at("presence"), out.at("counts"), targets, crowd, weights).total));
  EXPECT_TRUE(torch::equal(counting.scores(out), out.at("presence")));
}

TEST(Tasks, ClassifyScoresTopOneAndTopFive) {
  data::TaskData d;
  d.task = config::Task::classify;
  d.class_names = {"coat", "bag", "shirt"};
  d.examples = {example(1), example(2), example(3), example(4)};
  for (size_t i = 0; i < 4; ++i) {
    auto a = std::make_shared<ClassifyAnnotation>();
    a->label = static_cast<int64_t>(i % 3);
    d.examples[i].annotation = std::move(a);
  }
  models::ModelOutput out;
  out.outputs["logits"] = torch::tensor({{5.0f, 0.0f, 0.0f},    // coat: right
                                         {5.0f, 0.0f, 0.0f},    // coat for a bag: wrong
                                         {0.0f, 0.0f, 5.0f},    // shirt: right
                                         {0.0f, 5.0f, 0.0f}});  // bag for a coat: wrong
  const auto labels = torch::tensor({0, 1, 2, 0}, torch::kInt64);
  const Task& classify = task(config::Task::classify);
  auto e = classify.evaluation(d, d.class_names, config::VqaProtocol::official);
  e->add(out, whole_batch(d, {{kClassifyLabels, labels}}));
  const auto m = e->metrics();
  EXPECT_EQ(m.at("accuracy"), 0.5);
  EXPECT_EQ(m.at("top5_accuracy"), 1.0);  // 3 classes: every label is in the top 3
  EXPECT_EQ(e->table(m), "4 images: accuracy 50.00%, top-5 100.00%\n");

  TempDir dir;
  json summary = json::object();
  e->write(dir.path().string(), summary);
  const auto lines = read_jsonl((dir.path() / "predictions.jsonl").string());
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[1]["label"], "coat");
  EXPECT_EQ(lines[1]["target"], "bag");
  EXPECT_EQ(lines[1]["image"], "img2.png");

  const json answer = infer::to_json(classify.answer(out, 3, d.class_names, 5));
  ASSERT_EQ(answer["labels"].size(), 3u);
  EXPECT_EQ(answer["labels"][0]["label"], "bag");
  const auto loss =
      classify.loss(out, whole_batch(d, {{kClassifyLabels, labels}}), torch::kCPU, {});
  EXPECT_TRUE(torch::equal(loss.total, models::classify_loss(out.at("logits"), labels).total));
}

}  // namespace
}  // namespace xmodal::tasks
