// `xmodal score` against the first 100 official VQA v2 val annotations.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <cmath>

#include "../support/temp_dir.h"
#include "xmodal/eval/metrics.h"
#include "xmodal/eval/score.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal_test_paths.h"

namespace xmodal::eval {
namespace {

using xmodal::testing::TempDir;
const std::string kAnnotations =
    std::string(XMODAL_TEST_DATA) + "/vqa/minyus_v2_mscoco_val2014_annotations_first100.json";

nlohmann::json annotations() { return nlohmann::json::parse(io::read_file(kAnnotations)); }

TEST(Score, OfficialAccuracyOfAResultsFile) {
  TempDir dir;
  const auto anns = annotations()["annotations"];
  nlohmann::json results = nlohmann::json::array();
  double sum = 0;
  std::map<std::string, std::pair<double, int>> by_type;
  for (size_t i = 0; i < anns.size(); ++i) {
    // Every third answer deliberately wrong, the rest the most common human answer.
    const std::string answer = i % 3 == 0 ? "purple elephant" : anns[i]["multiple_choice_answer"];
    results.push_back({{"question_id", anns[i]["question_id"]}, {"answer", answer}});
    std::vector<std::string> human;
    for (const auto& h : anns[i]["answers"]) human.push_back(h["answer"]);
    const double acc = vqa_accuracy(answer, human);
    sum += acc;
    auto& t = by_type[anns[i]["answer_type"]];
    t.first += acc;
    t.second += 1;
  }
  const auto path = dir.write("results.json", results.dump());
  const auto r = score_vqa(path, kAnnotations);
  EXPECT_EQ(r.questions, 100);
  EXPECT_NEAR(r.overall, std::round(100 * sum) / 100, 1e-9);  // 100 questions: round(100 * mean, 2)
  EXPECT_GT(r.overall, 55.0);  // two thirds of the answers are the consensus answer
  EXPECT_LT(r.overall, 67.0);
  for (const auto& [type, t] : by_type) {
    EXPECT_NEAR(r.per_answer_type.at(type), 100 * t.first / t.second, 0.005) << type;
  }
  EXPECT_FALSE(r.per_question_type.empty());
  EXPECT_NE(format_score(r).find("Overall Accuracy is: "), std::string::npos);
}

TEST(Score, RefusesMissingOrForeignQuestionIds) {
  TempDir dir;
  const auto anns = annotations()["annotations"];
  nlohmann::json results = nlohmann::json::array();
  for (const auto& a : anns)
    results.push_back({{"question_id", a["question_id"]}, {"answer", "yes"}});
  const int64_t dropped = results.back()["question_id"];
  results.erase(results.size() - 1);
  try {
    score_vqa(dir.write("missing.json", results.dump()), kAnnotations);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("no result for question_id " + std::to_string(dropped)),
              std::string::npos)
        << e.what();
  }
  results.push_back({{"question_id", dropped}, {"answer", "yes"}});
  results.push_back({{"question_id", 7}, {"answer", "yes"}});
  try {
    score_vqa(dir.write("foreign.json", results.dump()), kAnnotations);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("question_id 7 is not in"), std::string::npos) << e.what();
  }
  EXPECT_THROW(score_vqa(dir.write("bad.json", "{\"question_id\": 1}"), kAnnotations),
               std::runtime_error);
  EXPECT_THROW(score_vqa(dir.write("broken.json", "[{\"question_id\": 1,"), kAnnotations),
               std::runtime_error);
}

}  // namespace
}  // namespace xmodal::eval
