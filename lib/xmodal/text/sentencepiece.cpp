#include "xmodal/text/sentencepiece.h"

#include <dlfcn.h>
#include <unistd.h>

#include <filesystem>
#include <mutex>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "xmodal/core/logging.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/text/sentencepiece_plugin.h"

namespace xmodal::text {
namespace {

namespace fs = std::filesystem;
constexpr const char* kPlugin = "libxmodal_sentencepiece.so";

// Finds and opens the plugin once: $XMODAL_SENTENCEPIECE_PLUGIN, else next to the executable,
// one folder up (the tests' build/tests/), or in ../lib/xmodal (an installed tree).
const plugin::SentencePieceApi& api() {
  static const plugin::SentencePieceApi* table = nullptr;
  static std::string failure;
  static std::once_flag once;
  std::call_once(once, [] {
    std::vector<std::string> candidates;
    if (const char* env = std::getenv("XMODAL_SENTENCEPIECE_PLUGIN"); env && *env) {
      candidates.emplace_back(env);
    } else {
      std::error_code ec;
      const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
      if (!ec) {
        const fs::path dir = exe.parent_path();
        for (const auto& d : {dir, dir.parent_path(), dir.parent_path() / "lib" / "xmodal"}) {
          candidates.push_back((d / kPlugin).string());
        }
      }
    }
#if defined(XMODAL_ASAN)
    // The sanitizer runtime aborts the process on dlopen(RTLD_DEEPBIND), which the plugin
    // needs (sentencepiece_plugin.h): a clear error instead.
    failure =
        "SentencePiece is unavailable in an AddressSanitizer build (its plugin needs "
        "dlopen with RTLD_DEEPBIND, which the sanitizer runtime refuses); use a normal build";
    return;
#endif
    std::string tried;
    for (const auto& path : candidates) {
      tried += (tried.empty() ? "" : ", ") + path;
      if (!fs::exists(path)) continue;
      void* handle = ::dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND);
      if (!handle) {
        failure = path + ": cannot load (" + ::dlerror() + ")";
        return;
      }
      using Entry = const plugin::SentencePieceApi* (*)();
      const auto entry = reinterpret_cast<Entry>(::dlsym(handle, "xmodal_sentencepiece_api"));
      if (!entry || entry()->abi != plugin::kSentencePieceAbi) {
        failure = path + ": not a compatible xmodal SentencePiece plugin (rebuild xmodal)";
        return;
      }
      table = entry();
      return;
    }
    failure = std::string("SentencePiece support needs ") + kPlugin +
              " (built with xmodal); not found in: " + tried +
              " (or set XMODAL_SENTENCEPIECE_PLUGIN)";
  });
  if (!table) throw std::runtime_error(failure);
  return *table;
}

void* handle(const std::shared_ptr<void>& sp) { return sp.get(); }

}  // namespace

SentencePieceTokenizer SentencePieceTokenizer::load(const std::string& model_path) {
  // Read the bytes ourselves: the error for a missing file then names the OS error.
  return from_serialized(io::read_file(model_path), model_path);
}

SentencePieceTokenizer SentencePieceTokenizer::from_serialized(const std::string& bytes,
                                                               const std::string& name) {
  const auto& f = api();
  std::string error;
  void* p = f.load(bytes, &error);
  if (!p) throw std::runtime_error(name + ": not a SentencePiece model (" + error + ")");
  SentencePieceTokenizer t(std::shared_ptr<void>(p, f.destroy), name);
  if (f.piece_size(p) <= 0 || f.special_id(p, 0) < 0) {
    throw std::runtime_error(name + ": SentencePiece model without pieces or <unk>");
  }
  return t;
}

SentencePieceTokenizer::SentencePieceTokenizer(std::shared_ptr<void> sp, std::string path)
    : sp_(std::move(sp)), path_(std::move(path)) {}

std::string SentencePieceTokenizer::serialized_model() const {
  return api().serialized(handle(sp_));
}

std::map<std::string, std::string> SentencePieceTokenizer::files() const {
  return {{"tokenizer.model", serialized_model()}};
}

std::vector<std::string> SentencePieceTokenizer::tokenize(const std::string& text) const {
  std::vector<std::string> pieces;
  std::string error;
  if (!api().encode_pieces(handle(sp_), text, &pieces, &error)) {
    throw std::runtime_error(path_ + ": encode failed: " + error);
  }
  return pieces;
}

std::vector<int64_t> SentencePieceTokenizer::encode_ids(const std::string& text) const {
  std::vector<int> ids;
  std::string error;
  if (!api().encode_ids(handle(sp_), text, &ids, &error)) {
    throw std::runtime_error(path_ + ": encode failed: " + error);
  }
  const int64_t limit = id_limit();
  std::vector<int64_t> out(ids.begin(), ids.end());
  if (limit > 0) {
    for (auto& id : out) id = id >= limit ? unk_id() : id;
  }
  return out;
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int> narrow;
  narrow.reserve(ids.size());
  for (const int64_t id : ids) {
    if (id < 0 || id >= vocab_size()) {
      throw std::invalid_argument("decode: id " + std::to_string(id) + " is outside [0, " +
                                  std::to_string(vocab_size()) + ") of " + path_);
    }
    narrow.push_back(static_cast<int>(id));
  }
  std::string text;
  std::string error;
  if (!api().decode(handle(sp_), narrow, &text, &error)) {
    throw std::runtime_error(path_ + ": decode failed: " + error);
  }
  return text;
}

std::string SentencePieceTokenizer::piece(int64_t id) const {
  if (id < 0 || id >= vocab_size()) {
    throw std::out_of_range("piece: id " + std::to_string(id) + " is outside [0, " +
                            std::to_string(vocab_size()) + ") of " + path_);
  }
  return api().id_to_piece(handle(sp_), static_cast<int>(id));
}

int64_t SentencePieceTokenizer::token_id(const std::string& token) const {
  return api().piece_to_id(handle(sp_), token);
}

int64_t SentencePieceTokenizer::vocab_size() const { return api().piece_size(handle(sp_)); }
int64_t SentencePieceTokenizer::unk_id() const { return api().special_id(handle(sp_), 0); }
int64_t SentencePieceTokenizer::model_bos_id() const { return api().special_id(handle(sp_), 1); }
int64_t SentencePieceTokenizer::model_eos_id() const { return api().special_id(handle(sp_), 2); }
int64_t SentencePieceTokenizer::model_pad_id() const { return api().special_id(handle(sp_), 3); }
int64_t SentencePieceTokenizer::pad_id() const {
  return model_pad_id() >= 0 ? model_pad_id() : unk_id();
}

int64_t SentencePieceTokenizer::cls_id() const {
  if (model_bos_id() < 0) {
    throw std::logic_error(path_ + ": the model has no <s> (bos_id -1) to use as [CLS]");
  }
  return model_bos_id();
}

int64_t SentencePieceTokenizer::sep_id() const {
  if (model_eos_id() < 0) {
    throw std::logic_error(path_ + ": the model has no </s> (eos_id -1) to use as [SEP]");
  }
  return model_eos_id();
}

SentencePieceTrained train_sentencepiece(const std::vector<std::string>& all_sentences,
                                         int vocab_size, const std::string& out_dir,
                                         const SentencePieceTrainOptions& options,
                                         const std::string& source) {
  if (vocab_size < 1) {
    throw std::invalid_argument("train_sentencepiece: vocab_size (" + std::to_string(vocab_size) +
                                ") must be positive");
  }
  if (options.num_threads < 1) {
    throw std::invalid_argument("train_sentencepiece: num_threads (" +
                                std::to_string(options.num_threads) + ") must be positive");
  }
  if (options.max_sentence_length < 1) {
    throw std::invalid_argument("train_sentencepiece: max_sentence_length (" +
                                std::to_string(options.max_sentence_length) + ") must be positive");
  }
  // Validated here, before SentencePiece sees them: its LoadSentences crashes (SIGSEGV) on a
  // sentence over max_sentence_length and CHECK-fails on a set of only empty ones.
  SentencePieceTrained trained;
  std::vector<std::string> sentences;
  sentences.reserve(all_sentences.size());
  int64_t first_long = -1;
  for (size_t i = 0; i < all_sentences.size(); ++i) {
    const std::string& s = all_sentences[i];
    if (s.find_first_not_of(" \t\r\n") == std::string::npos) {
      ++trained.skipped_empty;
    } else if (s.size() > static_cast<size_t>(options.max_sentence_length)) {
      if (trained.skipped_long++ == 0) first_long = static_cast<int64_t>(i) + 1;
    } else {
      sentences.push_back(s);
    }
  }
  if (trained.skipped_long > 0) {
    log::warn("[tokenizer] {}: left out {} longer than {} bytes (the first: #{})", source,
              trained.skipped_long, options.max_sentence_length, first_long);
  }
  if (sentences.empty()) {
    throw std::invalid_argument(source + ": no text to train a SentencePiece model on" +
                                (trained.skipped_long > 0
                                     ? " (every non-empty one is longer than " +
                                           std::to_string(options.max_sentence_length) + " bytes)"
                                     : " (every one is empty)"));
  }
  trained.sentences = static_cast<int64_t>(sentences.size());
  std::ostringstream coverage;
  coverage << options.character_coverage;
  const std::unordered_map<std::string, std::string> args = {
      {"model_type", options.model_type},
      {"vocab_size", std::to_string(vocab_size)},
      {"character_coverage", coverage.str()},
      {"pad_id", std::to_string(options.pad_id)},
      {"unk_id", std::to_string(options.unk_id)},
      {"bos_id", std::to_string(options.bos_id)},
      {"eos_id", std::to_string(options.eos_id)},
      {"max_sentence_length", std::to_string(options.max_sentence_length)},
      {"hard_vocab_limit", options.hard_vocab_limit ? "true" : "false"},
      {"num_threads", std::to_string(options.num_threads)},
      {"input_sentence_size", "0"},  // every sentence, no random sampling
      {"minloglevel", "1"},          // warnings and errors only
  };
  const auto& f = api();
  std::string model, error;
  if (!f.train(args, sentences, &model, &error)) {
    // "Internal: ./src/trainer_interface.cc(660) [(a) == (b)] Vocabulary size too high (60)..."
    // keeps only its sentence for the user.
    static const std::regex internals(R"(^\w+: \S+\.cc\(\d+\) \[.*?\] )");
    throw std::runtime_error("training SentencePiece model for " + out_dir +
                             " failed: " + std::regex_replace(error, internals, ""));
  }
  const std::shared_ptr<void> sp(f.load(model, &error), f.destroy);
  if (!sp) {
    throw std::runtime_error("SentencePiece trainer returned an unreadable model for " + out_dir +
                             ": " + error);
  }
  std::ostringstream vocab;
  for (int id = 0; id < f.piece_size(sp.get()); ++id) {
    vocab << f.id_to_piece(sp.get(), id) << '\t' << f.score(sp.get(), id) << '\n';
  }
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + out_dir + ": " + ec.message());
  const std::string model_path = (std::filesystem::path(out_dir) / "tokenizer.model").string();
  io::write_file_atomic(model_path, model);
  io::write_file_atomic((std::filesystem::path(out_dir) / "tokenizer.vocab").string(), vocab.str());
  trained.model = model_path;
  return trained;
}

SentencePieceTrained train_sentencepiece_from_file(const std::string& input_path, int vocab_size,
                                                   const std::string& out_dir,
                                                   const SentencePieceTrainOptions& options) {
  std::istringstream in(io::read_file(input_path, int64_t{1} << 30));
  std::vector<std::string> sentences;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    sentences.push_back(std::move(line));
  }
  return train_sentencepiece(sentences, vocab_size, out_dir, options, input_path + " (lines)");
}

}  // namespace xmodal::text
