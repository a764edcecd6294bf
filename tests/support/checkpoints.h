// A checkpoint of an untrained tiny model (tiny_model.h) written without training: the
// tokenizer built from the training split's texts, the weights of a seeded model.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <string>
#include <vector>

#include "tiny_model.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/scenes.h"
#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"
#include "xmodal/text/factory.h"

namespace xmodal::testing {

/// The checkpoint of an untrained model of `task` in `run_dir` over the scenes set at
/// `data_root` (32 px images, 1 thread); `sets` are applied after the tiny model's, `edit` may
/// change the weights before they are written. Returns the checkpoint's folder.
inline std::string untrained_checkpoint(const std::string& task, const std::string& run_dir,
                                        const std::string& data_root,
                                        const std::vector<std::string>& sets = {},
                                        const std::function<void(models::ModelImpl&)>& edit = {}) {
  std::vector<std::string> all = {"run.dir=" + run_dir, "run.threads=1", "data.root=" + data_root,
                                  "data.image_size=32", "model.head.max_count=3"};
  const auto tiny = tiny_model_sets();
  all.insert(all.end(), tiny.begin(), tiny.end());
  all.insert(all.end(), sets.begin(), sets.end());
  const auto c = config::parse_config("task: " + task + "\n", "<test>", all);
  const auto train = tasks::load_split(c, c.data.train_split);
  std::vector<std::string> texts;
  for (const auto& e : train.examples) texts.insert(texts.end(), e.texts.begin(), e.texts.end());
  checkpoint::Artifacts a;
  a.tokenizer = text::make_tokenizer(c, texts);
  a.class_names = train.class_names;
  torch::manual_seed(17);
  auto model = tasks::build_model(
      c, {a.tokenizer->vocab_size(), static_cast<int64_t>(a.class_names.size()), 0});
  if (edit) edit(*model);
  checkpoint::CheckpointContent content;
  content.model = checkpoint::state_tensors(*model);
  content.files = checkpoint::artifact_files(c, a);
  return checkpoint::write_checkpoint(c.run.dir, content);
}

/// A scenes set built from `scenes` and an untrained retrieval checkpoint of it (under `run_dir`),
/// with the set's train and val images, sorted: the fixture of the retrieval suites.
struct RetrievalScenes {
  std::vector<std::string> images;
  std::string checkpoint;
};

inline RetrievalScenes retrieval_scenes(const data::ScenesOptions& scenes,
                                        const std::string& run_dir) {
  data::build_scenes(scenes);
  RetrievalScenes r;
  for (const auto* split : {"train", "val"}) {
    for (const auto& e : std::filesystem::directory_iterator(std::filesystem::path(scenes.out) /
                                                             "images" / split)) {
      r.images.push_back(e.path().string());
    }
  }
  std::sort(r.images.begin(), r.images.end());
  r.checkpoint = untrained_checkpoint("retrieval", run_dir, scenes.out);
  return r;
}

}  // namespace xmodal::testing
