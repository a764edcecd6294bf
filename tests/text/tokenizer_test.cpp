#include "xmodal/text/tokenizer.h"

#include <gtest/gtest.h>

#include "../support/temp_dir.h"

namespace xmodal::text {
namespace {

TEST(WordTokenizer, SplitsWordsAndPunctuationAndBuildsByFrequency) {
  const auto t = WordTokenizer::build({"How many T-shirts are there?", "is there a bag?", "a bag"});
  EXPECT_EQ(t.tokenize("How many T-shirts?"),
            (std::vector<std::string>{"how", "many", "t", "-", "shirts", "?"}));
  EXPECT_EQ(t.vocab()[4], "?");  // most frequent first (after the 4 specials); ties alphabetical
  EXPECT_EQ(t.token_id("zebra"), t.unk_id());
  const Encoding e = t.encode("a bag", 6);
  EXPECT_EQ(e.ids, (std::vector<int64_t>{2, t.token_id("a"), t.token_id("bag"), 3, 0, 0}));
  EXPECT_EQ(e.mask, (std::vector<int64_t>{1, 1, 1, 1, 0, 0}));
  EXPECT_EQ(e.types, std::vector<int64_t>(6, 0));
  const Encoding cut = t.encode("is there a bag ? a bag", 4);  // truncation keeps [SEP]
  EXPECT_EQ(cut.ids.back(), 3);
  EXPECT_EQ(cut.mask, (std::vector<int64_t>{1, 1, 1, 1}));
}

TEST(WordTokenizer, SavesAndLoads) {
  const auto t = WordTokenizer::build({"a b c"});
  xmodal::testing::TempDir dir;
  const std::string path = (dir.path() / "vocab.txt").string();
  t.save(path);
  EXPECT_EQ(WordTokenizer::load(path).vocab(), t.vocab());
  EXPECT_THROW(WordTokenizer::load(dir.write("bad.txt", "x\ny\n")), std::runtime_error);
}

}  // namespace
}  // namespace xmodal::text
