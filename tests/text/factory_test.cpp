#include "xmodal/text/factory.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "../support/fixtures.h"
#include "xmodal/config/config.h"
#include "xmodal_test_paths.h"

namespace xmodal::text {
namespace {

const std::string kData = std::string(XMODAL_TEST_DATA) + "/text/";
const std::vector<std::string> kTexts = {"How many shirts are in the picture?",
                                         "Is there a bag, or two bags?", "unwanted running"};

config::Config config_for(config::TokenizerType type) {
  config::Config c;
  c.tokenizer.type = type;
  if (type == config::TokenizerType::wordpiece) {
    c.tokenizer.path = kData + "wordpiece/bert_base_uncased_vocab.txt";
  } else if (type == config::TokenizerType::sentencepiece) {
    c.tokenizer.path = kData + "sentencepiece/test_model.model";
  }
  return c;
}

// What a checkpoint stores of a tokenizer (files()) gives it back: the same ids for every text,
// and id_to_token() spells each token as tokenize() did, for every kind, with no caller naming
// a concrete tokenizer.
void expect_round_trip(config::TokenizerType type, const std::string& file) {
  const auto c = config_for(type);
  const auto made = make_tokenizer(c, kTexts);
  const auto files = made->files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files.begin()->first, file);
  const auto back = tokenizer_from_files(c, files, "ckpt");
  EXPECT_EQ(back->vocab_size(), made->vocab_size());
  for (const auto& t : kTexts) {
    EXPECT_EQ(back->encode(t, 24).ids, made->encode(t, 24).ids) << t;
    for (const auto& token : made->tokenize(t)) {
      const int64_t id = made->token_id(token);
      ASSERT_NE(id, made->unk_id()) << token;
      EXPECT_EQ(back->id_to_token(id), token);
    }
  }
  EXPECT_THROW(made->id_to_token(made->vocab_size()), std::out_of_range);
  EXPECT_THROW(made->id_to_token(-1), std::out_of_range);
}

TEST(TokenizerFactory, WordRoundTripsThroughItsFiles) {
  expect_round_trip(config::TokenizerType::word, "vocab.txt");
}

TEST(TokenizerFactory, WordPieceRoundTripsThroughItsFiles) {
  expect_round_trip(config::TokenizerType::wordpiece, "vocab.txt");
}

TEST(TokenizerFactory, SentencePieceRoundTripsThroughItsFiles) {
  XMODAL_SKIP_WITHOUT_SENTENCEPIECE();
  expect_round_trip(config::TokenizerType::sentencepiece, "tokenizer.model");
}

// tokenizer.{lower_case, accents, chinese_chars} reach the WordPiece tokenizer, from a config
// and from a checkpoint's files alike (a cased BERT keeps its capitals and accents).
TEST(TokenizerFactory, WordPieceSettingsComeFromTheConfig) {
  auto c = config_for(config::TokenizerType::wordpiece);
  const std::string text = "Café 北京";
  const auto uncased = make_tokenizer(c, {})->tokenize(text);
  EXPECT_EQ(uncased, (std::vector<std::string>{"cafe", "北", "京"}));
  c.tokenizer.lower_case = false;  // accents auto: kept, as HF's strip_accents None
  c.tokenizer.chinese_chars = false;
  const auto made = make_tokenizer(c, {});
  const auto cased = made->tokenize(text);
  EXPECT_NE(cased, uncased);
  EXPECT_EQ(cased.front(), "[UNK]");  // "Café" is not in the uncased vocabulary
  EXPECT_EQ(tokenizer_from_files(c, made->files(), "ckpt")->tokenize(text), cased);
  c.tokenizer.accents = config::Accents::strip;
  c.tokenizer.lower_case = true;
  EXPECT_EQ(make_tokenizer(c, {})->tokenize("Café")[0], "cafe");
  c.tokenizer.accents = config::Accents::keep;
  EXPECT_EQ(make_tokenizer(c, {})->tokenize("Café")[0], "[UNK]");
}

TEST(TokenizerFactory, AMissingOrDamagedFileNamesTheCheckpoint) {
  const auto c = config_for(config::TokenizerType::word);
  EXPECT_EQ(testing::error_of([&] { tokenizer_from_files(c, {}, "runs/a/step-4"); }),
            "checkpoint runs/a/step-4: no vocab.txt");
  XMODAL_SKIP_WITHOUT_SENTENCEPIECE();
  const auto sp = config_for(config::TokenizerType::sentencepiece);
  const std::string message = testing::error_of([&] {
    tokenizer_from_files(sp, {{"tokenizer.model", "not a model"}}, "runs/a/step-4");
  });
  EXPECT_NE(message.find("runs/a/step-4/tokenizer.model"), std::string::npos) << message;
}

TEST(TokenizerFactory, SplitLinesKeepsALastLineWithoutNewline) {
  EXPECT_EQ(split_lines("a\nb\n"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(split_lines("a\n\nb"), (std::vector<std::string>{"a", "", "b"}));
  EXPECT_TRUE(split_lines("").empty());
}

}  // namespace
}  // namespace xmodal::text
