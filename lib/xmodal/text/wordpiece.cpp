#include "xmodal/text/wordpiece.h"

#include <algorithm>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/text/unicode.h"

namespace xmodal::text {
namespace {

constexpr uint64_t kFnvOffset = 1469598103934665603ull, kFnvPrime = 1099511628211ull;

uint64_t fnv1a(std::string_view s, uint64_t h = kFnvOffset) {
  for (const char c : s) h = (h ^ static_cast<unsigned char>(c)) * kFnvPrime;
  return h;
}

const uint64_t kContinuationHash = fnv1a("##");

// Well-formed UTF-8 decodes and re-encodes to the same bytes; anything else does not.
bool is_utf8(std::string_view s) {
  std::string again;
  for (const char32_t c : unicode::decode_utf8(s)) unicode::append_utf8(c, again);
  return again == s;
}

// The tokens' splitting state for one text, reused between its words.
struct Scratch {
  std::u32string lowered, piece, stripped, word;
  std::string word_utf8;
  std::vector<size_t> offsets;  // byte offset of each code point of word_utf8, and the end
};

}  // namespace

WordPieceTokenizer::WordPieceTokenizer(std::vector<std::string> vocab, WordPieceOptions options)
    : options_(std::move(options)), vocab_(std::move(vocab)) {
  strip_accents_ = options_.strip_accents.value_or(options_.lower_case);
  if (options_.max_input_chars_per_word < 1) {
    throw std::invalid_argument("WordPiece: max_input_chars_per_word (" +
                                std::to_string(options_.max_input_chars_per_word) +
                                ") must be >= 1");
  }
  if (vocab_.size() >= static_cast<size_t>(INT32_MAX)) {
    throw std::invalid_argument("WordPiece: vocabulary of " + std::to_string(vocab_.size()) +
                                " tokens is too large");
  }
  for (const auto& s : options_.never_split) {
    if (s.empty()) throw std::invalid_argument("WordPiece: never_split lists an empty token");
  }
  size_t capacity = 16;
  while (capacity < 2 * vocab_.size()) capacity *= 2;
  slots_.assign(capacity, -1);
  hashes_.resize(vocab_.size());
  for (size_t id = 0; id < vocab_.size(); ++id) {
    const std::string& t = vocab_[id];
    hashes_[id] = fnv1a(t);
    max_token_bytes_ = std::max(max_token_bytes_, t.size());
    for (size_t i = hashes_[id] & (capacity - 1);; i = (i + 1) & (capacity - 1)) {
      if (slots_[i] < 0 || vocab_[slots_[i]] == t) {  // a repeated token takes the later id
        slots_[i] = static_cast<int32_t>(id);
        break;
      }
    }
  }
  std::string missing;
  auto special = [&](const char* name) -> int64_t {
    const int64_t id = find(name, false);
    if (id < 0) missing += std::string(missing.empty() ? "" : " ") + name;
    return id;
  };
  pad_id_ = special("[PAD]");
  unk_id_ = special("[UNK]");
  cls_id_ = special("[CLS]");
  sep_id_ = special("[SEP]");
  mask_id_ = special("[MASK]");
  if (!missing.empty()) {
    throw std::invalid_argument("WordPiece vocabulary of " + std::to_string(vocab_.size()) +
                                " tokens lacks " + missing +
                                " (a BERT vocab.txt lists [PAD] [UNK] [CLS] [SEP] [MASK])");
  }
}

WordPieceTokenizer WordPieceTokenizer::load(const std::string& vocab_path,
                                            WordPieceOptions options) {
  const std::string text = io::read_file(vocab_path);
  std::vector<std::string> vocab;
  size_t start = 0;
  while (start < text.size()) {  // Python's universal newlines: \n, \r\n and \r end a line
    const size_t end = text.find_first_of("\r\n", start);
    if (end == std::string::npos) {
      vocab.push_back(text.substr(start));
      break;
    }
    vocab.push_back(text.substr(start, end - start));
    start = end + (text[end] == '\r' && end + 1 < text.size() && text[end + 1] == '\n' ? 2 : 1);
  }
  for (size_t i = 0; i < vocab.size(); ++i) {
    if (!is_utf8(vocab[i])) {
      throw std::runtime_error(vocab_path + ":" + std::to_string(i + 1) +
                               ": not UTF-8 text (expected a BERT vocab.txt, one token a line)");
    }
  }
  try {
    return WordPieceTokenizer(std::move(vocab), std::move(options));
  } catch (const std::invalid_argument&) {
    rethrow_in(vocab_path + ": ", ErrorKind::input);  // the file's vocabulary is the bad input
  }
}

std::map<std::string, std::string> WordPieceTokenizer::files() const {
  return {{"vocab.txt", vocab_file(vocab_)}};
}

int64_t WordPieceTokenizer::find(std::string_view piece, bool continuation) const {
  const uint64_t h = continuation ? fnv1a(piece, kContinuationHash) : fnv1a(piece);
  const size_t mask = slots_.size() - 1;
  for (size_t i = h & mask;; i = (i + 1) & mask) {
    const int32_t id = slots_[i];
    if (id < 0) return -1;
    if (hashes_[id] != h) continue;
    const std::string& t = vocab_[id];
    if (continuation) {
      if (t.size() == piece.size() + 2 && t[0] == '#' && t[1] == '#' &&
          std::string_view(t).substr(2) == piece) {
        return id;
      }
    } else if (t == piece) {
      return id;
    }
  }
}

int64_t WordPieceTokenizer::token_id(const std::string& token) const {
  const int64_t id = find(token, false);
  return id < 0 ? unk_id_ : id;
}

void WordPieceTokenizer::run(std::string_view text, std::vector<int64_t>* ids,
                             std::vector<std::string>* tokens) const {
  auto emit = [&](int64_t id) {
    if (ids != nullptr) ids->push_back(id);
    if (tokens != nullptr) tokens->push_back(vocab_[id]);
  };
  Scratch s;
  const auto max_chars = static_cast<size_t>(options_.max_input_chars_per_word);

  // Step 5: greedy longest-match-first over the code points of s.word.
  auto wordpiece = [&] {
    if (s.word.empty()) return;
    if (s.word.size() > max_chars) {
      emit(unk_id_);
      return;
    }
    s.word_utf8.clear();
    s.offsets.clear();
    for (const char32_t c : s.word) {
      s.offsets.push_back(s.word_utf8.size());
      unicode::append_utf8(c, s.word_utf8);
    }
    s.offsets.push_back(s.word_utf8.size());
    const size_t first = ids != nullptr ? ids->size() : tokens->size();
    const size_t n = s.word.size();
    for (size_t start = 0; start < n;) {
      size_t end = n;
      while (end > start && s.offsets[end] - s.offsets[start] > max_token_bytes_) --end;
      int64_t id = -1;
      for (; end > start; --end) {
        const std::string_view piece(s.word_utf8.data() + s.offsets[start],
                                     s.offsets[end] - s.offsets[start]);
        id = find(piece, start > 0);
        if (id >= 0) break;
      }
      if (id < 0) {  // the word cannot be covered: it is one [UNK]
        if (ids != nullptr) ids->resize(first);
        if (tokens != nullptr) tokens->resize(first);
        emit(unk_id_);
        return;
      }
      emit(id);
      start = end;
    }
  };

  // Step 4: strip accents, then split around punctuation, for one whitespace-separated piece.
  auto finish_piece = [&] {
    if (s.piece.empty()) return;
    const std::u32string* piece = &s.piece;
    if (strip_accents_ &&
        std::any_of(s.piece.begin(), s.piece.end(), [](char32_t c) { return c >= 0x80; })) {
      s.stripped.clear();
      for (const char32_t c : unicode::nfd(s.piece)) {
        if (!(unicode::flags(c) & unicode::kMark)) s.stripped.push_back(c);
      }
      piece = &s.stripped;
    }
    s.word.clear();
    for (const char32_t c : *piece) {
      if (unicode::flags(c) & unicode::kPunctuation) {
        wordpiece();
        s.word.assign(1, c);
        wordpiece();
        s.word.clear();
      } else {
        s.word.push_back(c);
      }
    }
    wordpiece();
    s.piece.clear();
  };

  // Steps 2 and 3 for a text without special tokens.
  auto basic = [&](std::string_view part) {
    s.piece.clear();
    for (const char32_t original : unicode::decode_utf8(part)) {
      s.lowered.clear();
      if (options_.lower_case) {
        unicode::append_lower(original, s.lowered);
      } else {
        s.lowered.push_back(original);
      }
      for (const char32_t c : s.lowered) {
        const uint8_t f = unicode::flags(c);
        if (f & unicode::kControl) continue;
        if (f & (unicode::kWhitespace | unicode::kSpace)) {
          finish_piece();
        } else if (options_.tokenize_chinese_chars && (f & unicode::kChineseChar)) {
          finish_piece();
          s.piece.assign(1, c);
          finish_piece();
        } else {
          s.piece.push_back(c);
        }
      }
    }
    finish_piece();
  };

  // Step 1: cut out the never_split tokens (leftmost first, the longest where several start).
  size_t pos = 0;
  while (pos < text.size()) {
    size_t best = std::string_view::npos, best_len = 0;
    for (const auto& special : options_.never_split) {
      const size_t at = text.find(special, pos);
      if (at < best || (at == best && at != std::string_view::npos && special.size() > best_len)) {
        best = at;
        best_len = special.size();
      }
    }
    if (best == std::string_view::npos) break;
    basic(text.substr(pos, best - pos));
    emit(token_id(std::string(text.substr(best, best_len))));
    pos = best + best_len;
  }
  basic(text.substr(std::min(pos, text.size())));
}

std::vector<std::string> WordPieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> tokens;
  run(text, nullptr, &tokens);
  return tokens;
}

std::vector<int64_t> WordPieceTokenizer::encode_ids(const std::string& text) const {
  std::vector<int64_t> ids;
  run(text, &ids, nullptr);
  const int64_t limit = id_limit();
  if (limit > 0) {
    for (auto& id : ids) id = id >= limit ? unk_id_ : id;
  }
  return ids;
}

Encoding WordPieceTokenizer::encode_pair(const std::string& a, const std::string& b,
                                         int max_length) const {
  if (max_length < 3) {
    throw std::invalid_argument("encode_pair: max_length (" + std::to_string(max_length) +
                                ") must be >= 3 for [CLS] a [SEP] b [SEP]");
  }
  std::vector<int64_t> first = encode_ids(a), second = encode_ids(b);
  // HF truncate_sequences, "longest_first": remove from the longer, alternate once equal.
  const size_t budget = static_cast<size_t>(max_length) - 3;
  const size_t total = first.size() + second.size();
  if (total > budget) {
    const size_t remove = total - budget;
    const size_t n1 = first.size(), n2 = second.size();
    const size_t gap = std::min(n1 > n2 ? n1 - n2 : n2 - n1, remove);
    const size_t rest = remove - gap;
    const size_t cut1 = n1 > n2 ? gap + rest / 2 : rest / 2;
    const size_t cut2 = remove - cut1;
    first.resize(n1 - std::min(cut1, n1));
    second.resize(n2 - std::min(cut2, n2));
  }
  Encoding e;
  e.ids.push_back(cls_id_);
  e.ids.insert(e.ids.end(), first.begin(), first.end());
  e.ids.push_back(sep_id_);
  e.types.assign(e.ids.size(), 0);
  e.ids.insert(e.ids.end(), second.begin(), second.end());
  e.ids.push_back(sep_id_);
  e.types.resize(e.ids.size(), 1);
  e.mask.assign(e.ids.size(), 1);
  e.ids.resize(max_length, pad_id_);
  e.types.resize(max_length, 0);
  e.mask.resize(max_length, 0);
  return e;
}

}  // namespace xmodal::text
