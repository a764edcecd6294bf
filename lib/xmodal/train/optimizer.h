// AdamW with parameter groups, the learning-rate schedule and gradient clipping.
//
// AdamW is written out here rather than taken from torch::optim so that its state is plain named
// tensors (saved into optimizer.safetensors, loaded back bit-identical) and its arithmetic is
// exactly PyTorch's torch.optim.AdamW (decoupled decay p *= 1 - lr * wd, bias-corrected moments,
// eps added to sqrt(v) / sqrt(1 - beta2^t)).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "xmodal/config/config.h"

namespace xmodal::train {

/// Parameters that share a learning-rate multiplier and a weight decay.
struct ParamGroup {
  std::string name;  ///< "vision", "vision_no_decay", ..., "head", "head_no_decay"
  double lr_mult = 1.0;
  double weight_decay = 0.0;
  std::vector<std::string> names;
  std::vector<torch::Tensor> params;
};

/// Whether weight decay applies to a parameter: not to biases, LayerNorm weights (any 1-d
/// parameter), embeddings (word / position / token-type / modality-type tables), position
/// embeddings and [CLS] tokens.
bool decays(const std::string& name, const torch::Tensor& param);

/// Learning-rate multipliers per model component.
struct LrMults {
  double vision = 1.0;
  double text = 1.0;
  double fusion = 1.0;
  double head = 1.0;  ///< the task head and the auxiliary heads
};

/// The component a parameter belongs to: "vision", "text", "fusion" (its first name segment),
/// or "head" for everything else (head.*, aux_counting.*, aux_dense.*).
std::string component_of(const std::string& name);

/// The trainable parameters of `model` split into groups by component and by decay: "vision",
/// "vision_no_decay", "text", ..., "head_no_decay", each with its component's multiplier.
/// Empty groups are left out. Parameters with requires_grad false are skipped.
std::vector<ParamGroup> make_param_groups(const torch::nn::Module& model, double weight_decay,
                                          const LrMults& mults = {});

struct AdamWOptions {
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
};

class AdamW {
 public:
  explicit AdamW(std::vector<ParamGroup> groups, AdamWOptions options = {});

  /// One update of every parameter that has a gradient, with learning rate `lr` x its group's
  /// multiplier. Parameters without a gradient are left alone (and their step count too).
  void step(double lr);
  /// Drops the gradients (the next backward writes them fresh).
  void zero_grad();

  /// The state as named tensors: "exp_avg/NAME", "exp_avg_sq/NAME", "step/NAME" (int64 scalar).
  std::map<std::string, torch::Tensor> state() const;
  /// Restores state(); throws std::runtime_error naming a missing, unexpected or misshapen entry.
  void load_state(const std::map<std::string, torch::Tensor>& state);

  const std::vector<ParamGroup>& groups() const { return groups_; }
  /// Every parameter in group order.
  std::vector<torch::Tensor> parameters() const;

 private:
  struct Slot {
    torch::Tensor exp_avg;
    torch::Tensor exp_avg_sq;
    int64_t step = 0;
  };
  std::vector<ParamGroup> groups_;
  AdamWOptions options_;
  std::map<std::string, Slot> slots_;  // by parameter name
};

/// Scales the gradients of `params` so that their global L2 norm is at most `max_norm`
/// (torch.nn.utils.clip_grad_norm_). Returns the norm before clipping.
double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm);

/// The learning-rate schedule, counted in optimizer steps (after gradient accumulation).
struct LrSchedule {
  config::Schedule kind = config::Schedule::cosine;
  int64_t total_steps = 1;
  int64_t warmup_steps = 0;

  /// Warmup steps from train.warmup: a value below 1 is a fraction of `total_steps` (rounded
  /// up), 1 or more a step count.
  static int64_t warmup_from(double warmup, int64_t total_steps);

  /// Multiplier of the peak learning rate for optimizer step `step` (1-based: the first update
  /// is step 1). Warmup rises linearly, step / warmup_steps, reaching 1 at step warmup_steps;
  /// then, with progress p = (step - warmup) / (total - warmup): linear 1 - p, cosine
  /// (1 + cos(pi p)) / 2, constant 1. Steps beyond total_steps keep the final value.
  double factor(int64_t step) const;
};

}  // namespace xmodal::train
