// Task heads on the pooled fusion output (docs/design.md section 3).
//
//   VqaHead       fc1 (D -> hidden) -> LayerNorm -> GELU -> fc2 (hidden -> answers), as ViLT.
//   CountingHead  fc1 -> LayerNorm -> GELU, then per-category presence logits [B, C] and count
//                 logits over 0..max_count [B, C, max_count + 1].
#pragma once

#include <torch/nn.h>

#include "xmodal/models/linear.h"

namespace xmodal::models {

struct VqaHeadOptions {
  VqaHeadOptions(int64_t in_dim, int64_t hidden, int64_t num_answers)
      : in_dim_(in_dim), hidden_(hidden), num_answers_(num_answers) {}
  TORCH_ARG(int64_t, in_dim);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, num_answers);
  TORCH_ARG(double, eps) = 1e-5;
};

class VqaHeadImpl : public torch::nn::Cloneable<VqaHeadImpl> {
 public:
  explicit VqaHeadImpl(const VqaHeadOptions& options);
  void reset() override;
  /// pooled: [B, in_dim] -> answer logits [B, num_answers].
  torch::Tensor forward(const torch::Tensor& pooled);

  VqaHeadOptions options;
  Linear fc1 = nullptr;
  torch::nn::LayerNorm norm = nullptr;
  Linear fc2 = nullptr;
};
TORCH_MODULE(VqaHead);

struct CountingHeadOptions {
  CountingHeadOptions(int64_t in_dim, int64_t hidden, int64_t num_categories, int64_t max_count)
      : in_dim_(in_dim), hidden_(hidden), num_categories_(num_categories), max_count_(max_count) {}
  TORCH_ARG(int64_t, in_dim);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, num_categories);
  /// Count classes are 0..max_count.
  TORCH_ARG(int64_t, max_count);
  TORCH_ARG(double, eps) = 1e-5;
};

struct CountingLogits {
  torch::Tensor presence;  ///< [B, C]
  torch::Tensor counts;    ///< [B, C, max_count + 1]
};

class CountingHeadImpl : public torch::nn::Cloneable<CountingHeadImpl> {
 public:
  explicit CountingHeadImpl(const CountingHeadOptions& options);
  void reset() override;
  CountingLogits forward(const torch::Tensor& pooled);

  CountingHeadOptions options;
  Linear fc1 = nullptr;
  torch::nn::LayerNorm norm = nullptr;
  Linear presence = nullptr;
  Linear counts = nullptr;
};
TORCH_MODULE(CountingHead);

}  // namespace xmodal::models
