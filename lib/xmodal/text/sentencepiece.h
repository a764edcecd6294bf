// SentencePiece tokenizer and trainer, on Debian's libsentencepiece (0.1.97), which runs in a
// plugin, libxmodal_sentencepiece.so, loaded on first use (sentencepiece_plugin.h says why).
//
// Special ids for the Tokenizer interface (encode() writes [CLS] text [SEP]):
//   [CLS] is the model's <s> (bos_id), [SEP] its </s> (eos_id): the pieces every SentencePiece
//   model reserves for the start and end of a text. A model without them (bos_id or eos_id -1,
//   like T5's) still tokenizes and encode_ids() works, but cls_id()/sep_id() throw.
//   [PAD] is the model's pad_id when it defines one, else unk_id: the mask marks padding
//   anyway, and the unknown piece is the one id every model has.
// Models trained by train_sentencepiece() define all four: <pad>=0 <unk>=1 <s>=2 </s>=3.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/text/tokenizer.h"

namespace xmodal::text {

class SentencePieceTokenizer : public Tokenizer {
 public:
  /// Loads a .model file. Throws std::runtime_error naming the file if it is missing or not a
  /// SentencePiece model.
  static SentencePieceTokenizer load(const std::string& model_path);
  /// A model from its bytes (a .model file's content); `name` stands for it in errors
  /// (std::runtime_error "<name>: not a SentencePiece model ...").
  static SentencePieceTokenizer from_serialized(const std::string& bytes, const std::string& name);

  /// The pieces, e.g. "Hello world" -> "▁He", "ll", "o", "▁world".
  std::vector<std::string> tokenize(const std::string& text) const override;
  /// Id of a piece, unk_id() if the model has no such piece.
  int64_t token_id(const std::string& token) const override;
  int64_t vocab_size() const override;
  /// The model's pad_id, or unk_id() if it has none.
  int64_t pad_id() const override;
  int64_t unk_id() const override;
  /// The model's <s>; throws std::logic_error if it has none.
  int64_t cls_id() const override;
  /// The model's </s>; throws std::logic_error if it has none.
  int64_t sep_id() const override;
  /// The model's own ids, -1 where it defines none.
  int64_t model_bos_id() const;
  int64_t model_eos_id() const;
  int64_t model_pad_id() const;

  /// The ids of the text without <s>/</s>, exactly as spm_encode --output_format=id prints them
  /// (ids at or above id_limit(), if set, read as unk_id(), as in encode()).
  std::vector<int64_t> encode_ids(const std::string& text) const;
  /// Text of ids (spm_decode); throws std::invalid_argument for an id out of range.
  std::string decode(const std::vector<int64_t>& ids) const;
  /// The piece of an id; throws std::out_of_range.
  std::string piece(int64_t id) const;
  std::string id_to_token(int64_t id) const override { return piece(id); }
  /// tokenizer.model (serialized_model()).
  std::map<std::string, std::string> files() const override;
  /// The model's bytes, as a .model file holds them.
  std::string serialized_model() const;
  /// The file it was loaded from (or the name given to from_serialized()).
  const std::string& path() const { return path_; }

 private:
  SentencePieceTokenizer(std::shared_ptr<void> sp, std::string path);

  std::shared_ptr<void> sp_;  // a sentencepiece::SentencePieceProcessor inside the plugin
  std::string path_;
};

/// Settings of train_sentencepiece(); spm_train's flag of the same name in brackets.
struct SentencePieceTrainOptions {
  /// unigram, bpe, char or word (model_type).
  std::string model_type = "unigram";
  /// Share of characters the model covers; the rarest others become <unk>
  /// (character_coverage; spm_train's default is 0.9995).
  double character_coverage = 1.0;
  /// Special ids (pad_id, unk_id, bos_id, eos_id); -1 leaves one out. <unk> must exist.
  int pad_id = 0;
  int unk_id = 1;
  int bos_id = 2;
  int eos_id = 3;
  /// Longer sentences (in bytes) are skipped (max_sentence_length).
  int max_sentence_length = 4192;
  /// Fail if the text cannot give vocab_size pieces; false: fewer pieces (hard_vocab_limit).
  bool hard_vocab_limit = true;
  /// Training threads (num_threads). One keeps the result bit-for-bit reproducible.
  int num_threads = 1;
};

/// What train_sentencepiece() trained on.
struct SentencePieceTrained {
  std::string model;          ///< out_dir/tokenizer.model
  int64_t sentences = 0;      ///< sentences trained on
  int64_t skipped_long = 0;   ///< longer than max_sentence_length bytes, left out (and logged)
  int64_t skipped_empty = 0;  ///< empty or only whitespace, left out
};

/// Trains a SentencePiece model on `sentences` (one text each) and writes
/// out_dir/tokenizer.model and out_dir/tokenizer.vocab ("piece<TAB>score" lines), creating
/// out_dir. Deterministic: the same sentences and options give the same bytes. Sentences longer
/// than options.max_sentence_length and empty ones are left out here (SentencePiece 0.1.97
/// crashes on the former and aborts on a set of only empty ones); `source` names the input in
/// messages. Throws std::invalid_argument for bad options or no usable sentence,
/// std::runtime_error naming the folder if training or writing fails.
SentencePieceTrained train_sentencepiece(const std::vector<std::string>& sentences, int vocab_size,
                                         const std::string& out_dir,
                                         const SentencePieceTrainOptions& options = {},
                                         const std::string& source = "the sentences");

/// The same with the sentences read from a text file (at most 1 GiB), one a line. Throws
/// std::runtime_error naming the file if it cannot be read.
SentencePieceTrained train_sentencepiece_from_file(const std::string& input_path, int vocab_size,
                                                   const std::string& out_dir,
                                                   const SentencePieceTrainOptions& options = {});

}  // namespace xmodal::text
