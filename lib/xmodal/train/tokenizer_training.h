// `xmodal tokenizer train`: a SentencePiece model from a text file or from the training texts
// (questions, captions) of a config's data set, read by its task.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::train {

/// `xmodal tokenizer train`: a SentencePiece model from a text file or a config's training texts.
struct TokenizerTrainOptions {
  std::string input;                   ///< text file, one sentence per line, or
  std::string config;                  ///< a config: the texts of its data.train_split
  std::vector<std::string> overrides;  ///< --set for the config
  int vocab_size = 8000;
  std::string out_dir;
};
struct TokenizerTrainResult {
  std::string model;  ///< out_dir/tokenizer.model
  int64_t texts = 0;
  int64_t vocab_size = 0;
};
TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& options);

}  // namespace xmodal::train
