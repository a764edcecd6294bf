#include "xmodal/train/tokenizer_training.h"

#include <stdexcept>

#include "xmodal/config/loader.h"
#include "xmodal/core/error.h"
#include "xmodal/tasks/task.h"
#include "xmodal/text/sentencepiece.h"

namespace xmodal::train {

TokenizerTrainResult train_tokenizer(const TokenizerTrainOptions& o) {
  if (o.input.empty() == o.config.empty()) {
    throw OptionError("tokenizer train", "give exactly one of {input} and {config}");
  }
  TokenizerTrainResult result;
  if (!o.input.empty()) {
    const auto trained = text::train_sentencepiece_from_file(o.input, o.vocab_size, o.out_dir);
    result.model = trained.model;
    result.texts = trained.sentences;
  } else {
    auto config = config::load_config(o.config, o.overrides);
    config::validate(config);
    const auto split = tasks::load_split(config, config.data.train_split);
    std::vector<std::string> texts;
    for (const auto& e : split.examples) texts.insert(texts.end(), e.texts.begin(), e.texts.end());
    if (texts.empty()) {
      throw std::invalid_argument("tokenizer train: " + config.data.train_split + " of " +
                                  config.data.root + " has no texts");
    }
    const auto trained =
        text::train_sentencepiece(texts, o.vocab_size, o.out_dir, {}, config.data.root);
    result.model = trained.model;
    result.texts = trained.sentences;
  }
  result.vocab_size = text::SentencePieceTokenizer::load(result.model).vocab_size();
  return result;
}

}  // namespace xmodal::train
