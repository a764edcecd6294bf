// Checkpoint compatibility across LibTorch versions: tests/data/checkpoint_1_13 was written by
// the build on Debian's LibTorch 1.13 (its SOURCES.txt says how), with the predictions that
// build made. The current build must load it and give the same probabilities within 1e-5.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../support/predictions.h"
#include "xmodal/infer/predictor.h"
#include "xmodal_test_paths.h"

namespace {

const std::string kDir = std::string(XMODAL_TEST_DATA) + "/checkpoint_1_13";

std::vector<nlohmann::json> read_jsonl(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in) << path;
  std::vector<nlohmann::json> lines;
  std::string line;
  while (std::getline(in, line)) {
    if (!line.empty()) lines.push_back(nlohmann::json::parse(line));
  }
  return lines;
}

std::map<std::string, double> probabilities(const nlohmann::json& result) {
  std::map<std::string, double> p;
  for (const auto& a : result.at("answers")) {
    p[a.at("answer").get<std::string>()] = a.at("probability").get<double>();
  }
  return p;
}

TEST(CheckpointCompat, CheckpointOfTheLibTorch113BuildGivesItsPredictions) {
  const auto inputs_json = read_jsonl(kDir + "/inputs.jsonl");
  const auto expected = read_jsonl(kDir + "/expected.jsonl");
  ASSERT_EQ(inputs_json.size(), 6u);
  ASSERT_EQ(expected.size(), inputs_json.size());

  xmodal::infer::PredictorOptions options;
  options.checkpoint = kDir + "/checkpoint";
  options.top_k = 1000;  // every answer, as expected.jsonl lists them
  options.overrides = {"run.threads=1"};
  xmodal::infer::Predictor predictor(options);
  std::vector<xmodal::infer::Input> inputs;
  for (const auto& j : inputs_json) {
    inputs.push_back(
        {kDir + "/" + j.at("image").get<std::string>(), j.at("text").get<std::string>()});
  }
  const auto results = xmodal::testing::json_lines(predictor.predict(inputs));
  ASSERT_EQ(results.size(), expected.size());
  for (size_t i = 0; i < results.size(); ++i) {
    const auto got = nlohmann::json::parse(results[i]);
    ASSERT_FALSE(got.contains("error")) << results[i];
    const auto want = probabilities(expected[i]);
    const auto have = probabilities(got);
    ASSERT_EQ(have.size(), want.size()) << "input " << i;
    for (const auto& [answer, p] : want) {
      ASSERT_TRUE(have.count(answer)) << "input " << i << " lacks answer " << answer;
      EXPECT_NEAR(have.at(answer), p, 1e-5) << "input " << i << ", answer " << answer;
    }
  }
}

}  // namespace
