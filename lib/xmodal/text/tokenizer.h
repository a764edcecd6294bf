// Tokenizers turn text into ids with [CLS] ... [SEP], padding and an attention mask.
//
// `word` (this file) splits lower-cased text into words and punctuation and builds its
// vocabulary from the training texts; WordPiece and SentencePiece come with the tokenizer issue.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace xmodal::text {

/// One encoded text, padded to the requested length.
struct Encoding {
  std::vector<int64_t> ids;    ///< [CLS] tokens [SEP] [PAD]...
  std::vector<int64_t> mask;   ///< 1 for real tokens, 0 for padding
  std::vector<int64_t> types;  ///< token-type (segment) ids, all 0 for one text
};

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  /// The text's tokens (no special tokens).
  virtual std::vector<std::string> tokenize(const std::string& text) const = 0;
  /// Id of a token; unk_id() for unknown ones.
  virtual int64_t token_id(const std::string& token) const = 0;
  virtual int64_t vocab_size() const = 0;
  virtual int64_t pad_id() const = 0;
  virtual int64_t unk_id() const = 0;
  virtual int64_t cls_id() const = 0;
  virtual int64_t sep_id() const = 0;
  /// The token (piece) of an id, as tokenize() spells it; throws std::out_of_range for an id
  /// outside 0..vocab_size()-1.
  virtual std::string id_to_token(int64_t id) const = 0;
  /// What a checkpoint stores of this tokenizer, by file name (word and wordpiece: vocab.txt;
  /// sentencepiece: tokenizer.model); text/factory.h reads them back.
  virtual std::map<std::string, std::string> files() const = 0;

  /// [CLS] tokens [SEP], truncated to max_length (keeping [SEP]) and padded to it.
  Encoding encode(const std::string& text, int max_length) const;

  /// Ids at or above `limit` are read as unk_id(): for a vocabulary file longer than the
  /// pretrained embedding table it drives (0 = no limit).
  void limit_ids(int64_t limit) { id_limit_ = limit; }
  int64_t id_limit() const { return id_limit_; }

 protected:
  /// token_id() with the limit applied.
  int64_t limited_id(const std::string& token) const {
    const int64_t id = token_id(token);
    return id_limit_ > 0 && id >= id_limit_ ? unk_id() : id;
  }

 private:
  int64_t id_limit_ = 0;
};

/// A vocabulary file's text: one token per line, the line number being the id.
std::string vocab_file(const std::vector<std::string>& tokens);

/// Word-level tokenizer: lower-case ASCII, runs of letters/digits/apostrophes are words, every
/// other non-space character is a token of its own. Ids 0..3 are [PAD] [UNK] [CLS] [SEP].
class WordTokenizer : public Tokenizer {
 public:
  /// Vocabulary of every token seen at least `min_count` times in `texts`, most frequent first
  /// (ties alphabetical), after the 4 special tokens.
  static WordTokenizer build(const std::vector<std::string>& texts, int min_count = 1);
  /// One token per line (the format save() writes). Throws std::runtime_error naming the file.
  static WordTokenizer load(const std::string& path);
  void save(const std::string& path) const;

  explicit WordTokenizer(std::vector<std::string> vocab);

  std::vector<std::string> tokenize(const std::string& text) const override;
  int64_t token_id(const std::string& token) const override;
  int64_t vocab_size() const override { return static_cast<int64_t>(vocab_.size()); }
  int64_t pad_id() const override { return 0; }
  int64_t unk_id() const override { return 1; }
  int64_t cls_id() const override { return 2; }
  int64_t sep_id() const override { return 3; }
  std::string id_to_token(int64_t id) const override;
  std::map<std::string, std::string> files() const override;
  const std::vector<std::string>& vocab() const { return vocab_; }

 private:
  std::vector<std::string> vocab_;
  std::map<std::string, int64_t> ids_;
};

}  // namespace xmodal::text
