// The config assignments of the tests' tiny image+text model: hidden 16, one layer, 2 heads in
// every encoder and the fusion, 16 px patches (for data.image_size 32).
#pragma once

#include <string>
#include <vector>

#include "xmodal/config/config.h"

namespace xmodal::testing {

/// The same model as a Config, for tests that build it directly: 16 px images in 8 px patches,
/// 6 tokens, hidden 16, one layer, 2 heads, head hidden 32 with counts up to 3.
inline config::Config tiny_model_config() {
  config::Config c;
  c.data.image_size = 16;
  c.data.max_text_len = 6;
  c.model.vision = {8, 16, 1, 2, 32, 0.0, ""};
  c.model.text = {16, 1, 2, 32, 8, 0.0, ""};
  c.model.fusion = {config::FusionMode::concat, 16, 1, 2, 32};
  c.model.head = {32, 3};
  return c;
}

inline std::vector<std::string> tiny_model_sets() {
  return {"model.vision.patch_size=16", "model.vision.hidden=16",  "model.vision.layers=1",
          "model.vision.heads=2",       "model.vision.mlp_dim=32", "model.text.hidden=16",
          "model.text.layers=1",        "model.text.heads=2",      "model.text.intermediate=32",
          "model.fusion.hidden=16",     "model.fusion.layers=1",   "model.fusion.heads=2",
          "model.fusion.mlp_dim=32",    "model.head.hidden=16"};
}

/// The assignments of a short training run of that model on a tiny scenes set: 1 thread, 32 px
/// images, 4 steps of 8 questions, no validation or checkpoint before the end, then
/// tiny_model_sets().
inline std::vector<std::string> tiny_run_sets(const std::string& run_dir,
                                              const std::string& data_root) {
  std::vector<std::string> all = {
      "run.dir=" + run_dir,     "run.threads=1",
      "data.root=" + data_root, "data.image_size=32",
      "data.workers=1",         "train.batch_size=8",
      "train.lr=0.001",         "train.max_steps=4",
      "train.eval_every=100",   "train.checkpoint_every=100",
      "train.log_every=100",
  };
  const auto model = tiny_model_sets();
  all.insert(all.end(), model.begin(), model.end());
  return all;
}

}  // namespace xmodal::testing
