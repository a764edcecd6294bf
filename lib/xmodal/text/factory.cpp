#include "xmodal/text/factory.h"

#include <filesystem>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/text/sentencepiece.h"
#include "xmodal/text/wordpiece.h"

namespace xmodal::text {
namespace fs = std::filesystem;
namespace {

// A vocabulary file longer than the pretrained embedding table (model.text.vocab_size): the ids
// beyond it are read as [UNK], as they have no embedding.
void limit_to_embedding(Tokenizer& tokenizer, const config::Config& config) {
  const int64_t rows = config.model.text.vocab_size;
  if (rows <= 0 || tokenizer.vocab_size() <= rows) return;
  log::warn(
      "[tokenizer] the vocabulary has {} tokens but model.text.vocab_size is {}: ids {}..{} are "
      "read as [UNK]",
      tokenizer.vocab_size(), rows, rows, tokenizer.vocab_size() - 1);
  tokenizer.limit_ids(rows);
}

// tokenizer.{lower_case, accents, chinese_chars}: BertTokenizer's settings.
WordPieceOptions wordpiece_options(const config::Config& config) {
  WordPieceOptions options;
  const auto& t = config.tokenizer;
  options.lower_case = t.lower_case;
  if (t.accents != config::Accents::automatic) {
    options.strip_accents = t.accents == config::Accents::strip;
  }
  options.tokenize_chinese_chars = t.chinese_chars;
  return options;
}

}  // namespace

const std::string& required_file(const std::map<std::string, std::string>& files,
                                 const std::string& name, const std::string& source) {
  const auto it = files.find(name);
  if (it == files.end()) throw std::runtime_error("checkpoint " + source + ": no " + name);
  return it->second;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    lines.push_back(text.substr(start, end - start));
    start = end + 1;
  }
  return lines;
}

std::shared_ptr<Tokenizer> make_tokenizer(const config::Config& config,
                                          const std::vector<std::string>& texts) {
  std::shared_ptr<Tokenizer> tokenizer;
  switch (config.tokenizer.type) {
    case config::TokenizerType::word:
      tokenizer = std::make_shared<WordTokenizer>(WordTokenizer::build(texts));
      break;
    case config::TokenizerType::wordpiece: {
      const std::string path =
          !config.tokenizer.path.empty()
              ? config.tokenizer.path
              : (fs::path(config.model.text.pretrained) / "vocab.txt").string();
      tokenizer = std::make_shared<WordPieceTokenizer>(
          WordPieceTokenizer::load(path, wordpiece_options(config)));
      break;
    }
    case config::TokenizerType::sentencepiece:
      tokenizer = std::make_shared<SentencePieceTokenizer>(
          SentencePieceTokenizer::load(config.tokenizer.path));
      break;
  }
  limit_to_embedding(*tokenizer, config);
  return tokenizer;
}

std::shared_ptr<Tokenizer> tokenizer_from_files(const config::Config& config,
                                                const std::map<std::string, std::string>& files,
                                                const std::string& source) {
  const auto need = [&](const std::string& name) -> const std::string& {
    return required_file(files, name, source);
  };
  std::shared_ptr<Tokenizer> tokenizer;
  try {
    switch (config.tokenizer.type) {
      case config::TokenizerType::word:
        tokenizer = std::make_shared<WordTokenizer>(split_lines(need("vocab.txt")));
        break;
      case config::TokenizerType::wordpiece:
        tokenizer = std::make_shared<WordPieceTokenizer>(split_lines(need("vocab.txt")),
                                                         wordpiece_options(config));
        break;
      case config::TokenizerType::sentencepiece:
        tokenizer =
            std::make_shared<SentencePieceTokenizer>(SentencePieceTokenizer::from_serialized(
                need("tokenizer.model"), source + "/tokenizer.model"));
        break;
    }
  } catch (const std::invalid_argument&) {
    rethrow_in("checkpoint " + source + ": ", ErrorKind::input);  // its tokenizer files are bad
  }
  limit_to_embedding(*tokenizer, config);
  return tokenizer;
}

}  // namespace xmodal::text
