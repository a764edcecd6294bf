#include "xmodal/text/wordpiece.h"

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "../support/temp_dir.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/text/unicode.h"
#include "xmodal_test_paths.h"

namespace xmodal::text {
namespace {

using nlohmann::json;

std::string data_path(const std::string& name) {
  return std::string(XMODAL_TEST_DATA) + "/text/wordpiece/" + name;
}

json load_json(const std::string& name) { return json::parse(io::read_file(data_path(name))); }

const WordPieceTokenizer& bert_uncased() {
  static const WordPieceTokenizer t =
      WordPieceTokenizer::load(data_path("bert_base_uncased_vocab.txt"));
  return t;
}

std::vector<int64_t> parse_ids(const std::string& s) {
  std::vector<int64_t> ids;
  std::istringstream in(s);
  for (int64_t id; in >> id;) ids.push_back(id);
  return ids;
}

std::string join(const std::vector<std::string>& tokens) {
  std::string s;
  for (const auto& t : tokens) s += (s.empty() ? "" : " ") + t;
  return s;
}

TEST(WordPiece, LoadsBertBaseUncasedVocab) {
  const auto& t = bert_uncased();
  EXPECT_EQ(t.vocab_size(), 30522);
  EXPECT_EQ(t.pad_id(), 0);
  EXPECT_EQ(t.unk_id(), 100);
  EXPECT_EQ(t.cls_id(), 101);
  EXPECT_EQ(t.sep_id(), 102);
  EXPECT_EQ(t.mask_id(), 103);
  EXPECT_EQ(t.token_id("hello"), 7592);
  EXPECT_EQ(t.token_id("##ing"), 2075);
  EXPECT_EQ(t.token_id("no-such-token"), 100);
  EXPECT_EQ(t.token(2088), "world");
}

// The 10,570 SQuAD v1.1 dev questions with the ids of HF's BertTokenizer (swift-transformers).
TEST(WordPiece, MatchesHuggingFaceOnSquadQuestions) {
  const auto& t = bert_uncased();
  std::istringstream in(io::read_file(data_path("squad_questions.tsv")));
  std::vector<std::string> questions;
  std::vector<std::vector<int64_t>> expected;
  for (std::string line; std::getline(in, line);) {
    const size_t tab = line.find('\t');
    ASSERT_NE(tab, std::string::npos) << line;
    questions.push_back(line.substr(0, tab));
    expected.push_back(parse_ids(line.substr(tab + 1)));
  }
  ASSERT_EQ(questions.size(), 10570u);
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::vector<int64_t>> got;
  got.reserve(questions.size());
  for (const auto& q : questions) got.push_back(t.encode_ids(q));
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("[wordpiece] %zu questions in %.1f ms: %.0f questions/s (one thread)\n",
              questions.size(), seconds * 1e3, questions.size() / seconds);
  size_t wrong = 0;
  for (size_t i = 0; i < questions.size(); ++i) {
    if (got[i] != expected[i] && ++wrong <= 5) {
      ADD_FAILURE() << "question " << i << ": " << questions[i];
    }
  }
  EXPECT_EQ(wrong, 0u) << "of " << questions.size();
}

// swift-transformers' 18 bert-base-uncased cases: ids with [CLS]/[SEP], types and mask.
TEST(WordPiece, MatchesHuggingFaceEncodings) {
  const auto& t = bert_uncased();
  const json cases = load_json("swift_bert_uncased_cases.json");
  ASSERT_EQ(cases.size(), 18u);
  for (const auto& c : cases) {
    const std::string input = c["input"];
    const auto ids = c["encoded"]["input_ids"].get<std::vector<int64_t>>();
    const Encoding e = t.encode(input, static_cast<int>(ids.size()));
    EXPECT_EQ(e.ids, ids) << input;
    EXPECT_EQ(e.types, c["encoded"]["token_type_ids"].get<std::vector<int64_t>>()) << input;
    EXPECT_EQ(e.mask, c["encoded"]["attention_mask"].get<std::vector<int64_t>>()) << input;
    const std::vector<int64_t> inner(ids.begin() + 1, ids.end() - 1);
    EXPECT_EQ(t.encode_ids(input), inner) << input;
  }
}

TEST(WordPiece, MatchesHuggingFaceOnFrenchParagraph) {
  const json c = load_json("swift_bert_uncased_encoded.json");
  const auto& t = bert_uncased();
  const std::string text = c["text"];
  EXPECT_EQ(t.tokenize(text), c["bpe_tokens"].get<std::vector<std::string>>());
  const auto ids = c["token_ids"].get<std::vector<int64_t>>();  // with [CLS] and [SEP]
  EXPECT_EQ(t.encode_ids(text), std::vector<int64_t>(ids.begin() + 1, ids.end() - 1));
}

// llama.cpp's 46 hard strings (spaces only, emoji with ZWJ, Khmer, Cyrillic, CJK, ...).
TEST(WordPiece, MatchesHuggingFaceOnLlamaCppStrings) {
  const auto& t = bert_uncased();
  const std::string inp = io::read_file(data_path("llamacpp_ggml-vocab-bert-bge.gguf.inp"));
  const std::string separator = "\n__ggml_vocab_test__\n";
  std::vector<std::string> texts;
  for (size_t pos = 0;;) {
    const size_t at = inp.find(separator, pos);
    if (at == std::string::npos) break;
    texts.push_back(inp.substr(pos, at - pos));
    pos = at + separator.size();
  }
  std::istringstream out(io::read_file(data_path("llamacpp_ggml-vocab-bert-bge.gguf.out")));
  std::vector<std::vector<int64_t>> expected;
  for (std::string line; std::getline(out, line);) expected.push_back(parse_ids(line));
  ASSERT_EQ(texts.size(), 46u);
  ASSERT_EQ(expected.size(), texts.size());
  for (size_t i = 0; i < texts.size(); ++i) {
    EXPECT_EQ(t.encode_ids(texts[i]), expected[i]) << "string " << i << ": " << texts[i];
  }
}

// torchtext's BERTTokenizer: by default "[UNK]" in a text is split like a word; with
// never_split it stays whole (as HF's special tokens always do).
TEST(WordPiece, MatchesTorchtextVectors) {
  const json v = load_json("UPSTREAM_torchtext_bert_tokenizer_vectors.json");
  const auto texts = v["texts"].get<std::vector<std::string>>();
  const std::string vocab = data_path("bert_base_uncased_vocab.txt");
  WordPieceOptions plain;
  plain.never_split = {};
  WordPieceOptions keep;
  keep.never_split = {"[UNK]", "[CLS]"};
  const std::pair<const char*, WordPieceOptions> variants[] = {{"default", plain},
                                                               {"with_never_split", keep}};
  for (const auto& [name, options] : variants) {
    const auto t = WordPieceTokenizer::load(vocab, options);
    const json& expected = v[name]["uncased"];
    for (size_t i = 0; i < texts.size(); ++i) {
      EXPECT_EQ(t.tokenize(texts[i]), expected["tokens"][i].get<std::vector<std::string>>())
          << name << ": " << texts[i];
      EXPECT_EQ(t.encode_ids(texts[i]), expected["ids"][i].get<std::vector<int64_t>>())
          << name << ": " << texts[i];
    }
  }
}

// A vocabulary of the given tokens plus whichever specials it lacks, appended (ids unchanged).
WordPieceTokenizer with_specials(std::vector<std::string> vocab, WordPieceOptions options = {}) {
  for (const char* s : {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"}) {
    if (std::find(vocab.begin(), vocab.end(), s) == vocab.end()) vocab.push_back(s);
  }
  return WordPieceTokenizer(std::move(vocab), std::move(options));
}

// google-research/bert tokenization_test.py.
TEST(WordPiece, MatchesGoogleBertVectors) {
  const json v = load_json("UPSTREAM_google_bert_tokenization_test_vectors.json");
  const auto& full = v["full_tokenizer"];
  const auto t = with_specials(full["vocab"].get<std::vector<std::string>>());
  EXPECT_EQ(t.tokenize(full["text"]), full["tokens"].get<std::vector<std::string>>());
  EXPECT_EQ(t.encode_ids(full["text"]), full["ids"].get<std::vector<int64_t>>());

  // Basic tokenization: a vocabulary of exactly the expected tokens returns them unchanged.
  auto basic = [](const json& c, bool lower) {
    WordPieceOptions options;
    options.lower_case = lower;
    const auto tokens = c["tokens"].get<std::vector<std::string>>();
    return with_specials(tokens, options).tokenize(c["text"]) == tokens;
  };
  for (const auto& c : v["basic_tokenizer_lower"]) EXPECT_TRUE(basic(c, true)) << c["text"];
  for (const auto& c : v["basic_tokenizer_no_lower"]) EXPECT_TRUE(basic(c, false)) << c["text"];
  EXPECT_TRUE(basic(v["chinese"], true));

  const auto& wp = v["wordpiece_only"];
  WordPieceOptions cased;
  cased.lower_case = false;
  const auto w = with_specials(wp["vocab"].get<std::vector<std::string>>(), cased);
  for (const auto& c : wp["cases"]) {
    EXPECT_EQ(w.tokenize(c["text"]), c["tokens"].get<std::vector<std::string>>()) << c["text"];
  }

  const auto& classes = v["char_classes"];
  auto flags_of = [](const std::string& s) {
    const std::u32string c = unicode::decode_utf8(s);
    EXPECT_EQ(c.size(), 1u) << s;
    return unicode::flags(c[0]);
  };
  for (const auto& s : classes["whitespace_true"]) {
    EXPECT_TRUE(flags_of(s) & unicode::kWhitespace) << s;
  }
  for (const auto& s : classes["whitespace_false"]) {
    EXPECT_FALSE(flags_of(s) & unicode::kWhitespace) << s;
  }
  for (const auto& s : classes["control_true"]) EXPECT_TRUE(flags_of(s) & unicode::kControl);
  for (const auto& s : classes["control_false"]) EXPECT_FALSE(flags_of(s) & unicode::kControl);
  for (const auto& s : classes["punctuation_true"]) {
    EXPECT_TRUE(flags_of(s) & unicode::kPunctuation) << s;
  }
  for (const auto& s : classes["punctuation_false"]) {
    EXPECT_FALSE(flags_of(s) & unicode::kPunctuation) << s;
  }
}

TEST(WordPiece, SpecialTokensInTextStayWhole) {
  const auto& t = bert_uncased();
  EXPECT_EQ(t.encode_ids("[CLS] hello [MASK]world[SEP]"),
            (std::vector<int64_t>{101, 7592, 103, 2088, 102}));
  // Only the exact spelling is special, as in HF: "[cls]" is text.
  EXPECT_EQ(join(t.tokenize("[cls] [Mask]")), "[ cl ##s ] [ mask ]");
}

TEST(WordPiece, UnicodeFollowsPython) {
  EXPECT_STREQ(unicode::version(), "14.0.0");  // Debian 12's Python 3.11
  std::u32string lower;
  unicode::append_lower(U'\u0130', lower);  // LATIN CAPITAL LETTER I WITH DOT ABOVE
  EXPECT_EQ(lower, U"i\u0307");
  // Canonical ordering: dot below (class 220) before acute (230); long s with dot above.
  EXPECT_EQ(unicode::nfd(U"a\u0301\u0323"), U"a\u0323\u0301");
  EXPECT_EQ(unicode::nfd(U"\u1e9b\u0323"), U"\u017f\u0323\u0307");
  EXPECT_EQ(unicode::nfd(U"\ud55c"), U"\u1112\u1161\u11ab");  // Hangul, arithmetically
  EXPECT_TRUE(unicode::flags(U'\u2028') & unicode::kSpace);   // str.split() cuts there
  EXPECT_FALSE(unicode::flags(U'\u2028') & unicode::kWhitespace);
  EXPECT_TRUE(unicode::flags(U'\u00a0') & unicode::kWhitespace);
  EXPECT_TRUE(unicode::flags(U'\u200d') & unicode::kControl);      // ZWJ, category Cf
  EXPECT_TRUE(unicode::flags(U'\U0001FAF8') & unicode::kControl);  // unassigned in 14.0
  EXPECT_TRUE(unicode::flags(U'\u4e2d') & unicode::kChineseChar);
  EXPECT_TRUE(unicode::flags(U'\u00bf') & unicode::kPunctuation);
  EXPECT_FALSE(unicode::flags(U'$') & unicode::kWhitespace);
  EXPECT_FALSE(unicode::flags(U'\u20ac') & unicode::kPunctuation);  // euro sign, category Sc

  const auto& t = bert_uncased();
  EXPECT_EQ(join(t.tokenize("\u0130STANBUL caf\u00e9 Ca\u0301fe\u0301")), "istanbul cafe cafe");
  EXPECT_EQ(join(t.tokenize("a\u2028b\u00a0c\u3000d")), "a b c d");
  EXPECT_EQ(join(t.tokenize("\xe4\xb8\xad\xe6\x96\x87ok")), "中 文 ok");
}

// Ill-formed UTF-8 becomes U+FFFD per maximal subpart (as Python's errors="replace"), which
// the tokenizer then drops.
TEST(WordPiece, InvalidUtf8IsReplacedNotFatal) {
  EXPECT_EQ(unicode::decode_utf8("ab\xff"
                                 "cd"),
            U"ab\ufffdcd");
  EXPECT_EQ(unicode::decode_utf8("\xe2\x82"), U"\ufffd");                  // truncated
  EXPECT_EQ(unicode::decode_utf8("\xe0\x80\x80"), U"\ufffd\ufffd\ufffd");  // overlong
  EXPECT_EQ(unicode::decode_utf8("\xed\xa0\x80"), U"\ufffd\ufffd\ufffd");  // surrogate
  EXPECT_EQ(unicode::decode_utf8("\xf4\x90\x80\x80"), std::u32string(4, U'\ufffd'));
  EXPECT_EQ(unicode::decode_utf8("\xf0\x9f\x98"), U"\ufffd");
  EXPECT_EQ(unicode::decode_utf8("a\xe2\x82\xac"
                                 "b"),
            U"a\u20acb");

  const auto& t = bert_uncased();
  EXPECT_EQ(t.encode_ids("hel\xfflo wor\xe2\x82ld"), t.encode_ids("hello world"));
  EXPECT_EQ(t.encode_ids("\xc0\xaf\xed\xa0\x80\xff"), std::vector<int64_t>{});
  EXPECT_EQ(t.encode_ids(std::string("a\0b", 3)), t.encode_ids("ab"));  // U+0000 is dropped
}

TEST(WordPiece, LongWordsAreUnknown) {
  const auto& t = bert_uncased();
  // 100 code points (200 bytes) is still a word; 101 is one [UNK].
  std::string alphas;
  for (int i = 0; i < 100; ++i) alphas += "\u03b1";
  const auto ids = t.encode_ids(alphas);
  EXPECT_EQ(ids.size(), 100u);
  EXPECT_EQ(ids[0], t.token_id("\u03b1"));
  EXPECT_EQ(ids[1], t.token_id("##\u03b1"));
  EXPECT_EQ(t.encode_ids(alphas + "\u03b1"), std::vector<int64_t>{100});
  EXPECT_EQ(t.encode_ids("hello \U0001F600 world"), (std::vector<int64_t>{7592, 100, 2088}));
}

TEST(WordPiece, EncodesPairsLikeHuggingFace) {
  const auto& t = bert_uncased();
  const Encoding e = t.encode_pair("Hello world", "how are you?", 12);
  EXPECT_EQ(e.ids,
            (std::vector<int64_t>{101, 7592, 2088, 102, 2129, 2024, 2017, 1029, 102, 0, 0, 0}));
  EXPECT_EQ(e.types, (std::vector<int64_t>{0, 0, 0, 0, 1, 1, 1, 1, 1, 0, 0, 0}));
  EXPECT_EQ(e.mask, (std::vector<int64_t>{1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0}));

  // longest_first: ten tokens each into 7 places -> HF keeps 4 of the first and 3 of the
  // second; 3 and 10 tokens into 7 -> the longer is cut alone to 4.
  const std::string ten = "a b c d e f g h i j";
  const Encoding both = t.encode_pair(ten, ten, 10);
  const int64_t a = t.token_id("a"), b = t.token_id("b"), c = t.token_id("c"), d = t.token_id("d");
  EXPECT_EQ(both.ids, (std::vector<int64_t>{101, a, b, c, d, 102, a, b, c, 102}));
  EXPECT_EQ(both.types, (std::vector<int64_t>{0, 0, 0, 0, 0, 0, 1, 1, 1, 1}));
  const Encoding one = t.encode_pair("a b c", ten, 10);
  EXPECT_EQ(one.ids, (std::vector<int64_t>{101, a, b, c, 102, a, b, c, d, 102}));
  const Encoding longer_first = t.encode_pair(ten, "a", 6);
  EXPECT_EQ(longer_first.ids, (std::vector<int64_t>{101, a, b, 102, a, 102}));
  const Encoding nothing_left = t.encode_pair(ten, ten, 3);
  EXPECT_EQ(nothing_left.ids, (std::vector<int64_t>{101, 102, 102}));
  EXPECT_EQ(nothing_left.types, (std::vector<int64_t>{0, 0, 1}));
  try {
    t.encode_pair("a", "b", 2);
    ADD_FAILURE() << "max_length 2 accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_STREQ(e.what(), "encode_pair: max_length (2) must be >= 3 for [CLS] a [SEP] b [SEP]");
  }
}

// A vocab.txt longer than the embedding table it drives: ids past the table read as [UNK].
TEST(WordPiece, IdLimitReadsHighIdsAsUnknown) {
  auto t = WordPieceTokenizer::load(data_path("bert_base_uncased_vocab.txt"));
  t.limit_ids(7000);  // hello = 7592, world = 2088
  EXPECT_EQ(t.encode_ids("hello world"), (std::vector<int64_t>{100, 2088}));
  EXPECT_EQ(t.encode("hello world", 4).ids, (std::vector<int64_t>{101, 100, 2088, 102}));
  EXPECT_EQ(t.encode_pair("hello", "world", 5).ids,
            (std::vector<int64_t>{101, 100, 102, 2088, 102}));
}

std::string load_error(const std::string& path) {
  try {
    WordPieceTokenizer::load(path);
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "(no error)";
}

TEST(WordPiece, LoadErrorsNameTheFile) {
  xmodal::testing::TempDir dir;
  const std::string missing = (dir.path() / "none.txt").string();
  EXPECT_NE(load_error(missing).find(missing), std::string::npos) << load_error(missing);

  const std::string no_mask = dir.write("no_mask.txt", "[PAD]\n[UNK]\n[CLS]\n[SEP]\nhello\n");
  EXPECT_EQ(load_error(no_mask), no_mask +
                                     ": WordPiece vocabulary of 5 tokens lacks [MASK] (a BERT "
                                     "vocab.txt lists [PAD] [UNK] [CLS] [SEP] [MASK])");
  const std::string binary = dir.write("model.bin", std::string("PK\x03\x04\0\0\xff\xfe", 8));
  EXPECT_EQ(load_error(binary),
            binary + ":1: not UTF-8 text (expected a BERT vocab.txt, one token a line)");

  // Windows line ends are line ends, as in Python's text mode.
  const std::string crlf =
      dir.write("crlf.txt", "[PAD]\r\n[UNK]\r\n[CLS]\r\n[SEP]\r\n[MASK]\r\nhello\r\n");
  const auto t = WordPieceTokenizer::load(crlf);
  EXPECT_EQ(t.vocab_size(), 6);
  EXPECT_EQ(t.encode_ids("Hello"), std::vector<int64_t>{5});
}

}  // namespace
}  // namespace xmodal::text
