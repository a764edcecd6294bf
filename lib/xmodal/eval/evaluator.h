// Runs a model over a split and scores it with the task's metrics (tasks/task.h). Used by
// validation during training and by `xmodal eval`.
#pragma once

#include <torch/torch.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/models/losses.h"
#include "xmodal/models/model.h"
#include "xmodal/tasks/task.h"

namespace xmodal::eval {

struct EvalResult {
  /// The task's metrics (config::task_metrics names, loss included); empty when the split has no
  /// targets.
  std::map<std::string, double> metrics;
  /// The predictions, scored; they write `xmodal eval`'s result files and table.
  std::unique_ptr<tasks::Evaluation> predictions;
  int64_t examples = 0;
  int64_t skipped = 0;
  double seconds = 0;
};

/// Predicts every batch `loader` yields for epoch 0 (give it shuffle off), in eval mode without
/// gradients (the module's training flag is restored afterwards), and scores the predictions
/// against `data` (which must outlive the result). `classes` are the model's. `rerank_k` > 0:
/// retrieval re-ranks by its ITM head (tasks::Evaluation::rerank; `xmodal eval`, not the
/// validation during training, which ranks by ITC alone).
EvalResult evaluate(models::Model& model, const data::TaskData& data, data::Loader& loader,
                    const std::vector<std::string>& classes, const models::LossWeights& weights,
                    const c10::Device& device,
                    config::VqaProtocol protocol = config::VqaProtocol::official, int rerank_k = 0);

}  // namespace xmodal::eval
