// One optimizer step's forward and backward: train.grad_accum micro-batches, each loss the sum
// of its per-sample losses divided by the samples of the whole group (of every process), so the
// gradients equal those of one large batch; then the all-reduces of a distributed run and the
// gradient clipping. The weights are not touched: the caller updates them when the step is
// finite.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/data/loader.h"
#include "xmodal/models/losses.h"
#include "xmodal/models/model.h"
#include "xmodal/tasks/task.h"
#include "xmodal/train/distributed.h"

namespace xmodal::train {

struct StepOutcome {
  double loss = 0;       ///< mean loss per sample over the group; NaN/Inf when the step failed
  double grad_norm = 0;  ///< before clipping; the loss when the loss is not finite
  int64_t samples = 0;   ///< samples of the group, over every process
  /// Distributed: a stop signal any process received (every process agrees on it at this step);
  /// SIGTERM when only another process got one. Always 0 without a communicator.
  int signal = 0;
  bool finite() const;
};

class TrainStep {
 public:
  /// `params`: the optimizer's parameters, in its order (the order of the gradient buckets and
  /// of the norm's sum). `comm` may be null (one process). `teacher` (train.distill; may be
  /// null) runs on every micro-batch without gradients and adds the distillation term.
  TrainStep(models::Model model, std::vector<torch::Tensor> params, const config::Config& config,
            const c10::Device& device, Communicator* comm, models::Model teacher = nullptr);
  /// Forward and backward of `group` (non-empty), reduced and clipped.
  StepOutcome run(const std::vector<data::Batch>& group);

 private:
  // The weighted loss sum of one micro-batch (task loss plus the auxiliary ones).
  torch::Tensor loss_sum(const models::ModelOutput& out, const data::Batch& batch,
                         const models::ModelOutput* teacher) const;

  models::Model model_;
  models::Model teacher_;
  const config::TrainConfig& tc_;
  c10::Device device_;
  Communicator* comm_;
  const tasks::Task& task_;
  models::LossWeights weights_;
  std::vector<torch::Tensor> params_;
  std::unique_ptr<tasks::Collective> collective_;  // comm_ as the tasks see it (or null)
};

}  // namespace xmodal::train
