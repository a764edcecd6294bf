#include "xmodal/train/run_data.h"

#include <optional>
#include <stdexcept>
#include <vector>

#include "xmodal/core/logging.h"
#include "xmodal/tasks/task.h"
#include "xmodal/text/factory.h"

namespace xmodal::train {

RunData load_run_data(const config::Config& config,
                      const std::map<std::string, std::string>* checkpoint_files,
                      const std::string& resume_from) {
  RunData r;
  auto& a = r.artifacts;
  // vqa: the answer vocabulary (the checkpoint's, or the training split's) maps the splits
  const bool vocabulary = tasks::task(config.task).vocabulary_from_training_split();
  std::optional<std::vector<std::string>> answers;
  if (checkpoint_files) {
    a = checkpoint::artifacts_from_files(config, *checkpoint_files, resume_from);
    if (vocabulary) answers = a.class_names;
  }
  const auto& d = config.data;
  r.train = std::make_shared<data::TaskData>(
      tasks::load_split(config, d.train_split, answers ? &*answers : nullptr));
  if (!answers && vocabulary) answers = r.train->class_names;
  if (r.train->examples.empty()) {
    throw std::runtime_error("training split " + d.train_split + " of " + d.root +
                             " has no examples");
  }
  r.val = std::make_shared<data::TaskData>(
      tasks::load_split(config, d.val_split, answers ? &*answers : nullptr));
  if (!a.tokenizer) {
    std::vector<std::string> texts;
    if (config.tokenizer.type == config::TokenizerType::word) {
      for (const auto& e : r.train->examples) {
        texts.insert(texts.end(), e.texts.begin(), e.texts.end());
      }
    }
    a.tokenizer = text::make_tokenizer(config, texts);
    a.class_names = r.train->class_names;
    if (tasks::task(config.task).classes_are_vocabulary()) {
      a.class_names.clear();
      for (int64_t id = 0; id < a.tokenizer->vocab_size(); ++id) {
        a.class_names.push_back(a.tokenizer->id_to_token(id));
      }
    }
    a.aux_class_names = r.train->aux_class_names;
  }
  if (a.aux_class_names != r.train->aux_class_names) {
    throw std::runtime_error("train.aux: the categories of " + d.root +
                             " differ from the checkpoint's");
  }
  log::info("[data] {}: {} examples, val: {} examples, {} classes, vocabulary {} tokens",
            d.train_split, r.train->examples.size(), r.val->examples.size(), a.class_names.size(),
            a.tokenizer->vocab_size());
  r.files = checkpoint::artifact_files(config, a);
  return r;
}

}  // namespace xmodal::train
