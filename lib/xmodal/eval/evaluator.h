// Runs a model over a split and scores it with the task's metrics (eval/metrics.h). Used by
// validation during training and by `xmodal eval`.
#pragma once

#include <torch/torch.h>

#include <map>
#include <string>
#include <vector>

#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/eval/metrics.h"
#include "xmodal/models/losses.h"
#include "xmodal/models/model.h"

namespace xmodal::eval {

struct EvalResult {
  /// The task's metrics (config::task_metrics names, loss included); empty when the split has no
  /// targets.
  std::map<std::string, double> metrics;
  /// Example index (into TaskData::examples) of each prediction row, in data order.
  std::vector<int64_t> indices;
  /// vqa: predicted answer class and its sigmoid probability, per row; classify: predicted
  /// class and its softmax probability.
  std::vector<int64_t> answers;
  std::vector<float> confidences;
  /// vqa: official accuracy of each row (empty without targets).
  std::vector<double> accuracies;
  /// counting: presence probabilities [N, C] f32 and predicted counts [N, C] int64.
  torch::Tensor presence;
  torch::Tensor counts;
  /// counting: per-category figures (empty without targets).
  std::vector<CategoryScores> categories;
  int64_t examples = 0;
  int64_t skipped = 0;
  double seconds = 0;
};

/// Predicts every batch `loader` yields for epoch 0 (give it shuffle off), in eval mode without
/// gradients (the module's training flag is restored afterwards), and scores the predictions
/// against `data`.
EvalResult evaluate(models::Model& model, const data::TaskData& data, data::Loader& loader,
                    const models::LossWeights& weights, const c10::Device& device,
                    config::VqaProtocol protocol = config::VqaProtocol::official);

}  // namespace xmodal::eval
