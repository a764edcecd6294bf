#include "xmodal/text/tokenizer.h"

#include <algorithm>
#include <cctype>
#include <sstream>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::text {

Encoding Tokenizer::encode(const std::string& text, int max_length) const {
  if (max_length < 2) throw std::invalid_argument("max_length must be >= 2 for [CLS] and [SEP]");
  Encoding e;
  e.ids.push_back(cls_id());
  for (const auto& token : tokenize(text)) {
    if (static_cast<int>(e.ids.size()) >= max_length - 1) break;  // keep room for [SEP]
    e.ids.push_back(limited_id(token));
  }
  e.ids.push_back(sep_id());
  e.mask.assign(e.ids.size(), 1);
  e.ids.resize(max_length, pad_id());
  e.mask.resize(max_length, 0);
  e.types.assign(max_length, 0);
  return e;
}

WordTokenizer::WordTokenizer(std::vector<std::string> vocab) : vocab_(std::move(vocab)) {
  const std::vector<std::string> specials = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  if (vocab_.size() < 4 || !std::equal(specials.begin(), specials.end(), vocab_.begin())) {
    throw std::invalid_argument("word vocabulary must start with [PAD] [UNK] [CLS] [SEP]");
  }
  for (size_t i = 0; i < vocab_.size(); ++i) {
    if (!ids_.emplace(vocab_[i], static_cast<int64_t>(i)).second) {
      throw std::invalid_argument("word vocabulary lists '" + vocab_[i] + "' twice");
    }
  }
}

std::vector<std::string> WordTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  std::string word;
  auto flush = [&] {
    if (!word.empty()) tokens.push_back(word);
    word.clear();
  };
  for (const unsigned char c : text) {
    if (std::isalnum(c) || c == '\'' || c >= 0x80) {  // bytes of UTF-8 letters stay in words
      word += static_cast<char>(std::tolower(c));
    } else if (std::isspace(c)) {
      flush();
    } else {
      flush();
      tokens.emplace_back(1, static_cast<char>(c));
    }
  }
  flush();
  return tokens;
}

int64_t WordTokenizer::token_id(const std::string& token) const {
  const auto it = ids_.find(token);
  return it == ids_.end() ? unk_id() : it->second;
}

WordTokenizer WordTokenizer::build(const std::vector<std::string>& texts, int min_count) {
  WordTokenizer empty({"[PAD]", "[UNK]", "[CLS]", "[SEP]"});
  std::map<std::string, int64_t> counts;
  for (const auto& t : texts) {
    for (const auto& token : empty.tokenize(t)) ++counts[token];
  }
  std::vector<std::pair<std::string, int64_t>> kept(counts.begin(), counts.end());
  std::stable_sort(kept.begin(), kept.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  std::vector<std::string> vocab = {"[PAD]", "[UNK]", "[CLS]", "[SEP]"};
  for (const auto& [token, n] : kept) {
    if (n >= min_count) vocab.push_back(token);
  }
  return WordTokenizer(std::move(vocab));
}

WordTokenizer WordTokenizer::load(const std::string& path) {
  std::istringstream in(io::read_file(path));
  std::vector<std::string> vocab;
  std::string line;
  while (std::getline(in, line)) vocab.push_back(line);
  try {
    return WordTokenizer(std::move(vocab));
  } catch (const std::invalid_argument&) {
    rethrow_in(path + ": ", ErrorKind::input);  // the file's vocabulary is the bad input
  }
}

void WordTokenizer::save(const std::string& path) const {
  io::write_file_atomic(path, vocab_file(vocab_));
}

std::string WordTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size()) throw std::out_of_range("token id " + std::to_string(id));
  return vocab_[static_cast<size_t>(id)];
}

std::map<std::string, std::string> WordTokenizer::files() const {
  return {{"vocab.txt", vocab_file(vocab_)}};
}

std::string vocab_file(const std::vector<std::string>& tokens) {
  std::string text;
  for (const auto& token : tokens) text += token + "\n";
  return text;
}

}  // namespace xmodal::text
