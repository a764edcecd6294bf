// `xmodal score` against the first 100 official VQA v2 val annotations.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fmt/format.h>

#include <cmath>
#include <map>
#include <set>

#include "../support/temp_dir.h"
#include "xmodal/eval/score.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/metrics.h"
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
    const double acc = tasks::vqa_accuracy(answer, human);
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
// Reference figures of GT-Vision-Lab's own vqaEval.py (master a013f00 = official, its parent
// a4f1afd = legacy), run by scripts/make_vqa_eval_fixtures.py on real VQA v2 annotations with
// four prediction sets (majority answers; answers changed in case, articles, periods, number
// words and whitespace; random answers; one human's answer): xmodal equals them to the printed
// 2 decimals, overall, per answer type, per question type and per question.
TEST(Score, EqualsTheOfficialToolOnEveryReferenceCase) {
  const std::string data = XMODAL_TEST_DATA;
  const auto local = [&](const std::string& path) {  // paths in expected.json: from the repo root
    const std::string prefix = "tests/data";
    return data + path.substr(path.rfind(prefix, 0) == 0 ? prefix.size() : 0);
  };
  const auto expected =
      nlohmann::json::parse(io::read_file(data + "/vqa/official_eval/expected.json"));
  ASSERT_EQ(expected["cases"].size(), 16u);
  std::set<std::string> protocols_that_differ;
  for (const auto& c : expected["cases"]) {
    const std::string name = c["split"].get<std::string>() + "/" +
                             c["predictions"].get<std::string>() + "/" +
                             c["protocol"].get<std::string>();
    const auto protocol =
        *config::enum_from_string<config::VqaProtocol>(c["protocol"].get<std::string>());
    const auto r =
        score_vqa(local(c["results"]), local(c["annotations"]), local(c["questions"]), protocol);
    EXPECT_DOUBLE_EQ(r.overall, c["overall"].get<double>()) << name;
    ASSERT_EQ(r.per_answer_type.size(), c["perAnswerType"].size()) << name;
    for (const auto& [type, value] : c["perAnswerType"].items()) {
      EXPECT_DOUBLE_EQ(r.per_answer_type.at(type), value.get<double>()) << name << " " << type;
    }
    ASSERT_EQ(r.per_question_type.size(), c["perQuestionType"].size()) << name;
    for (const auto& [type, value] : c["perQuestionType"].items()) {
      EXPECT_DOUBLE_EQ(r.per_question_type.at(type), value.get<double>()) << name << " " << type;
    }
    // Per question, from the same annotations and results.
    const auto anns = nlohmann::json::parse(io::read_file(local(c["annotations"])))["annotations"];
    std::map<int64_t, std::string> answers;
    for (const auto& a : nlohmann::json::parse(io::read_file(local(c["results"])))) {
      answers[a["question_id"]] = a["answer"];
    }
    for (const auto& a : anns) {
      std::vector<std::string> human;
      for (const auto& h : a["answers"]) human.push_back(h["answer"]);
      const int64_t id = a["question_id"];
      const double acc = tasks::vqa_accuracy(answers.at(id), human, protocol);
      const double official = c["evalQA"][std::to_string(id)].get<double>();
      EXPECT_DOUBLE_EQ(std::stod(fmt::format("{:.2f}", 100 * acc)), official)
          << name << " question " << id << ": '" << answers.at(id) << "'";
    }
  }
}

}  // namespace xmodal::eval
