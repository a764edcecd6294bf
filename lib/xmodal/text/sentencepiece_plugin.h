// The boundary between xmodal and libsentencepiece.
//
// Debian's libsentencepiece.so.0 carries its own copy of protobuf-lite and exports its ~1,600
// google::protobuf symbols; LibTorch loads libprotobuf.so.32. Linked into one process, the
// dynamic linker binds libprotobuf's start-up code to sentencepiece's copy and every program
// crashes before main() (measured: SIGSEGV in ReflectionOps::FindInitializationErrors). So
// sentencepiece lives in a small plugin, libxmodal_sentencepiece.so, that xmodal dlopen()s with
// RTLD_LOCAL | RTLD_DEEPBIND on first use: its symbols stay out of the global scope and it binds
// to its own protobuf copy. Only this table of functions crosses the boundary (C++ types are
// fine: both sides use the same libstdc++).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace xmodal::text::plugin {

constexpr int kSentencePieceAbi = 1;

struct SentencePieceApi {
  int abi;  ///< kSentencePieceAbi of the plugin
  /// A processor from a serialized ModelProto, or nullptr with *error set.
  void* (*load)(const std::string& bytes, std::string* error);
  void (*destroy)(void* processor);
  bool (*encode_pieces)(void* processor, const std::string& text, std::vector<std::string>* out,
                        std::string* error);
  bool (*encode_ids)(void* processor, const std::string& text, std::vector<int>* out,
                     std::string* error);
  bool (*decode)(void* processor, const std::vector<int>& ids, std::string* out,
                 std::string* error);
  std::string (*id_to_piece)(void* processor, int id);
  int (*piece_to_id)(void* processor, const std::string& piece);
  int (*piece_size)(void* processor);
  float (*score)(void* processor, int id);
  /// 0 unk, 1 bos, 2 eos, 3 pad (-1 where the model has none).
  int (*special_id)(void* processor, int which);
  std::string (*serialized)(void* processor);
  /// SentencePieceTrainer::Train(args, sentences) -> the serialized model, or false + *error.
  bool (*train)(const std::unordered_map<std::string, std::string>& args,
                const std::vector<std::string>& sentences, std::string* model, std::string* error);
};

}  // namespace xmodal::text::plugin

/// The plugin's one exported symbol.
extern "C" const xmodal::text::plugin::SentencePieceApi* xmodal_sentencepiece_api();
