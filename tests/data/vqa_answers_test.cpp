#include "xmodal/data/vqa_answers.h"

#include <gtest/gtest.h>

#include "../support/temp_dir.h"

namespace xmodal::data {
namespace {

// Cases follow the official evaluation's rules (vqa_answers.h).
TEST(VqaAnswers, NormalisationFollowsTheOfficialRules) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"Two", "2"},  // number words -> digits, lower case
      {"none", "0"},
      {"Ten apples", "10 apples"},
      {"the dog", "dog"},  // articles dropped
      {"an orange", "orange"},
      {"dont", "don't"},  // contractions
      {"isnt", "isn't"},
      {"yes, just one", "yes just 1"},  // ", " next to a space: comma deleted
      {"black, white", "black white"},
      {"leaf-hat", "leaf hat"},  // '-' not next to a space: becomes a space
      {"red/yellow", "red yellow"},
      {"1,000", "1000"},  // digit,digit anywhere: punctuation deleted
      {"What?", "what"},
      {"3.5", "3.5"},  // a period before a digit stays
      {"a.b", "ab"},
      {"u.s.a.", "usa"},
      {"end.", "end"},
      {"  hello\tthere\n", "hello there"},
      {"it's", "it's"},  // apostrophes are not punctuation here
      {"a", ""},
  };
  for (const auto& [in, out] : cases) EXPECT_EQ(normalize_answer(in), out) << "'" << in << "'";
  // At most 32 periods are removed (the script passes re.UNICODE as re.sub's count).
  EXPECT_EQ(vqa_process_punctuation(std::string(40, '.')), std::string(8, '.'));
}

TEST(VqaAnswers, SoftScores) {
  EXPECT_FLOAT_EQ(soft_score(0), 0.0f);
  EXPECT_FLOAT_EQ(soft_score(1), 0.3f);
  EXPECT_FLOAT_EQ(soft_score(2), 0.6f);
  EXPECT_FLOAT_EQ(soft_score(3), 0.9f);
  EXPECT_FLOAT_EQ(soft_score(4), 1.0f);
  EXPECT_FLOAT_EQ(soft_score(10), 1.0f);
}

TEST(VqaAnswers, VocabularyByMinCountAndTopKWithTargets) {
  const std::vector<std::vector<std::string>> answers = {
      {"net", "net", "net", "netting", "net", "net", "mesh", "net", "pitcher", "orange"},
      {"pitcher", "catcher", "pitcher", "pitcher", "pitcher", "pitcher", "pitcher", "pitcher",
       "pitcher", "pitcher"},
      {"Orange", "orange", "orange", "orange", "orange", "orange", "orange", "orange", "orange",
       "orange."}};
  const auto all = AnswerVocab::build(answers, 1, 0);
  EXPECT_EQ(all.answers(),
            (std::vector<std::string>{"orange", "pitcher", "net", "catcher", "mesh", "netting"}));
  const auto frequent = AnswerVocab::build(answers, 2, 0);
  EXPECT_EQ(frequent.answers(), (std::vector<std::string>{"orange", "pitcher", "net"}));
  EXPECT_EQ(AnswerVocab::build(answers, 1, 2).size(), 2u);
  const auto targets = frequent.targets(answers[0]);
  // net x6 -> 1.0; pitcher x1 -> 0.3; orange x1 -> 0.3; netting/mesh are not in the vocabulary
  EXPECT_EQ(targets, (std::vector<std::pair<int, float>>{{0, 0.3f}, {1, 0.3f}, {2, 1.0f}}));
  xmodal::testing::TempDir dir;
  const std::string path = (dir.path() / "answers.txt").string();
  frequent.save(path);
  EXPECT_EQ(AnswerVocab::load(path).answers(), frequent.answers());
  EXPECT_THROW(AnswerVocab({"a", "a"}), std::invalid_argument);
}

}  // namespace
}  // namespace xmodal::data
