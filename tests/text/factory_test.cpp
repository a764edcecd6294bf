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
