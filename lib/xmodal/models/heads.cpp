#include "xmodal/models/heads.h"

#include <torch/torch.h>

#include "xmodal/models/blocks.h"

namespace xmodal::models {

VqaHeadImpl::VqaHeadImpl(const VqaHeadOptions& options_) : options(options_) {
  TORCH_CHECK(options.num_answers() > 0, "VqaHead: num_answers (", options.num_answers(),
              ") must be positive");
  reset();
}

void VqaHeadImpl::reset() {
  fc1 = register_module("fc1", Linear(options.in_dim(), options.hidden()));
  norm = register_module(
      "norm",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({options.hidden()}).eps(options.eps())));
  fc2 = register_module("fc2", Linear(options.hidden(), options.num_answers()));
}

torch::Tensor VqaHeadImpl::forward(const torch::Tensor& pooled) {
  return fc2(exact_gelu(norm(fc1(pooled))));
}

CountingHeadImpl::CountingHeadImpl(const CountingHeadOptions& options_) : options(options_) {
  TORCH_CHECK(options.num_categories() > 0 && options.max_count() > 0,
              "CountingHead: num_categories (", options.num_categories(), ") and max_count (",
              options.max_count(), ") must be positive");
  reset();
}

void CountingHeadImpl::reset() {
  const int64_t h = options.hidden(), c = options.num_categories();
  fc1 = register_module("fc1", Linear(options.in_dim(), h));
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({h}).eps(options.eps())));
  presence = register_module("presence", Linear(h, c));
  counts = register_module("counts", Linear(h, c * (options.max_count() + 1)));
}

CountingLogits CountingHeadImpl::forward(const torch::Tensor& pooled) {
  auto h = exact_gelu(norm(fc1(pooled)));
  // counts: [B, C * (K + 1)] -> [B, C, K + 1]
  return {presence(h),
          counts(h).view({pooled.size(0), options.num_categories(), options.max_count() + 1})};
}

}  // namespace xmodal::models
