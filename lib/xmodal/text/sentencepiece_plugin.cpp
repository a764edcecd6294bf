// libxmodal_sentencepiece.so: libsentencepiece behind a table of functions (see
// sentencepiece_plugin.h for why it is a separate, dlopen()ed module).
#include "xmodal/text/sentencepiece_plugin.h"

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

#include <memory>

namespace {

using sentencepiece::SentencePieceProcessor;

SentencePieceProcessor* sp(void* p) { return static_cast<SentencePieceProcessor*>(p); }

bool check(const sentencepiece::util::Status& status, std::string* error) {
  if (status.ok()) return true;
  if (error) *error = status.ToString();
  return false;
}

// Feeds in-memory sentences to the trainer.
class VectorIterator : public sentencepiece::SentenceIterator {
 public:
  explicit VectorIterator(const std::vector<std::string>& sentences) : sentences_(sentences) {}
  bool done() const override { return i_ >= sentences_.size(); }
  void Next() override { ++i_; }
  const std::string& value() const override { return sentences_[i_]; }
  sentencepiece::util::Status status() const override { return {}; }

 private:
  const std::vector<std::string>& sentences_;
  size_t i_ = 0;
};

const xmodal::text::plugin::SentencePieceApi api = {
    xmodal::text::plugin::kSentencePieceAbi,
    [](const std::string& bytes, std::string* error) -> void* {
      auto p = std::make_unique<SentencePieceProcessor>();
      if (!check(p->LoadFromSerializedProto(bytes), error)) return nullptr;
      return p.release();
    },
    [](void* p) { delete sp(p); },
    [](void* p, const std::string& text, std::vector<std::string>* out, std::string* error) {
      return check(sp(p)->Encode(text, out), error);
    },
    [](void* p, const std::string& text, std::vector<int>* out, std::string* error) {
      return check(sp(p)->Encode(text, out), error);
    },
    [](void* p, const std::vector<int>& ids, std::string* out, std::string* error) {
      return check(sp(p)->Decode(ids, out), error);
    },
    [](void* p, int id) { return sp(p)->IdToPiece(id); },
    [](void* p, const std::string& piece) { return sp(p)->PieceToId(piece); },
    [](void* p) { return sp(p)->GetPieceSize(); },
    [](void* p, int id) { return sp(p)->GetScore(id); },
    [](void* p, int which) {
      switch (which) {
        case 0:
          return sp(p)->unk_id();
        case 1:
          return sp(p)->bos_id();
        case 2:
          return sp(p)->eos_id();
        default:
          return sp(p)->pad_id();
      }
    },
    [](void* p) { return sp(p)->serialized_model_proto(); },
    [](const std::unordered_map<std::string, std::string>& args,
       const std::vector<std::string>& sentences, std::string* model, std::string* error) {
      VectorIterator it(sentences);
      return check(sentencepiece::SentencePieceTrainer::Train(args, &it, model), error);
    },
};

}  // namespace

extern "C" __attribute__((visibility("default"))) const xmodal::text::plugin::SentencePieceApi*
xmodal_sentencepiece_api() {
  return &api;
}
