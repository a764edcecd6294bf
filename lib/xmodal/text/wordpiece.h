// WordPiece tokenizer that gives the same ids as Hugging Face's BertTokenizer (Python, "slow").
//
// A text goes through these steps, each HF's (transformers/models/bert/tokenization_bert.py and
// PreTrainedTokenizer.tokenize), in HF's order:
//   1. special tokens written in the text ("[CLS]", "[MASK]", ...; options.never_split) are cut
//      out whole, as HF does with its added/special tokens;
//   2. the rest is lower-cased one character at a time with Python's str.lower() (full mapping:
//      U+0130 becomes "i" + U+0307; no final-sigma rule, since HF lower-cases character by
//      character before the basic tokenizer sees the text);
//   3. _clean_text drops U+0000, U+FFFD and category C* except \t \n \r, and turns whitespace
//      (\t \n \r and category Zs) into spaces; _tokenize_chinese_chars puts spaces around CJK
//      ideographs; the text is split where Python's str.split() splits;
//   4. each piece is NFD-normalised and stripped of category Mn (strip accents) and split
//      before and after every punctuation character (ASCII symbols or category P*);
//   5. greedy longest-match-first WordPiece with "##" continuations; a word longer than
//      max_input_chars_per_word code points, or one that cannot be covered, is one [UNK].
// The Unicode data is Python's (see unicode.h).
//
// Differences from HF, all outside what the uncased BERT vocabularies exercise:
//   - newer transformers (>= 4.29) also NFC-normalise before step 3. With accents stripped
//     (the default for lower_case) NFD(NFC(x)) == NFD(x), so the result is identical; with
//     lower_case = false and accents kept, xmodal does not compose, like the Rust "fast"
//     tokenizer and older transformers;
//   - HF reads text as Python str; xmodal reads UTF-8 bytes. Ill-formed UTF-8 does not throw:
//     each bad sequence becomes U+FFFD, which step 3 then drops, so "ab\xFFcd" reads "abcd".
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "xmodal/text/tokenizer.h"

namespace xmodal::text {

/// BertTokenizer's settings; the defaults are bert-base-uncased's.
struct WordPieceOptions {
  /// Lower-case the text (do_lower_case).
  bool lower_case = true;
  /// NFD + drop category Mn (strip_accents); unset follows lower_case, like HF's None.
  std::optional<bool> strip_accents;
  /// Put spaces around CJK ideographs (tokenize_chinese_chars).
  bool tokenize_chinese_chars = true;
  /// A longer word (in code points) becomes [UNK] (max_input_chars_per_word).
  int max_input_chars_per_word = 100;
  /// Tokens kept whole wherever they appear in a text (HF's special tokens). Empty: "[CLS]" in
  /// a text is tokenized like any other word ("[", "cl", "##s", "]").
  std::vector<std::string> never_split = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
};

class WordPieceTokenizer : public Tokenizer {
 public:
  /// A BERT vocab.txt: one token per line, the id is the line number from 0 (\n, \r\n or \r
  /// line ends). Throws std::runtime_error naming the file if it cannot be read, is not UTF-8
  /// or lacks one of [PAD] [UNK] [CLS] [SEP] [MASK].
  static WordPieceTokenizer load(const std::string& vocab_path, WordPieceOptions options = {});

  /// Token i has id i. A token listed twice gets the later id, as in HF's load_vocab. Throws
  /// std::invalid_argument if a special token is missing or an option is out of range.
  explicit WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options = {});

  /// The wordpieces, e.g. "unwanted" -> "un", "##want", "##ed" (no [CLS]/[SEP]).
  std::vector<std::string> tokenize(const std::string& text) const override;
  /// Id of a vocabulary entry ("##ed" for a continuation), unk_id() if there is none.
  int64_t token_id(const std::string& token) const override;
  /// Lines of the vocabulary (one more than the largest id).
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  int64_t pad_id() const override { return pad_id_; }
  int64_t unk_id() const override { return unk_id_; }
  int64_t cls_id() const override { return cls_id_; }
  int64_t sep_id() const override { return sep_id_; }
  int64_t mask_id() const { return mask_id_; }

  /// Ids of tokenize(text), faster; HF's encode(text, add_special_tokens=False). Ids at or
  /// above id_limit(), if set, read as unk_id(), as in encode() and encode_pair().
  std::vector<int64_t> encode_ids(const std::string& text) const;

  /// [CLS] a [SEP] b [SEP] with token types 0 (through the first [SEP]) and 1 (b and its
  /// [SEP]), padded to max_length with [PAD] (type 0, mask 0). Too long a pair is cut like HF's
  /// truncation="longest_first": tokens come off the end of the longer text, of the second
  /// when both are as long (HF's Rust "fast" tokenizer cuts the first there instead).
  /// Throws std::invalid_argument if max_length < 3.
  Encoding encode_pair(const std::string& a, const std::string& b, int max_length) const;

  /// The token with this id; throws std::out_of_range.
  const std::string& token(int64_t id) const { return vocab_.at(static_cast<size_t>(id)); }
  std::string id_to_token(int64_t id) const override { return token(id); }
  /// vocab.txt, one token per line.
  std::map<std::string, std::string> files() const override;
  const WordPieceOptions& options() const { return options_; }

 private:
  // Runs the whole pipeline; fills whichever of `ids` and `tokens` is not null.
  void run(std::string_view text, std::vector<int64_t>* ids,
           std::vector<std::string>* tokens) const;
  // Id of (continuation ? "##" : "") + piece, or -1.
  int64_t find(std::string_view piece, bool continuation) const;

  WordPieceOptions options_;
  bool strip_accents_ = true;
  std::vector<std::string> vocab_;
  std::vector<uint64_t> hashes_;  // per id: hash of the token
  std::vector<int32_t> slots_;    // open-addressing table of ids, -1 where empty
  size_t max_token_bytes_ = 0;
  int64_t pad_id_ = 0, unk_id_ = 0, cls_id_ = 0, sep_id_ = 0, mask_id_ = 0;
};

}  // namespace xmodal::text
