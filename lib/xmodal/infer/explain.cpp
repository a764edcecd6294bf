#include "xmodal/infer/explain.h"

#include <torch/torch.h>

#include <stdexcept>

namespace xmodal::infer {
namespace {

torch::Tensor as_double(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU, torch::kFloat64);
}

void check_map(const AttentionMap& a, int64_t length, bool needs_grad) {
  if (!a.probs.defined() || a.probs.dim() != 3 || a.probs.size(1) != length ||
      a.probs.size(2) != length) {
    throw std::invalid_argument("explain: an attention map is not [H, " + std::to_string(length) +
                                ", " + std::to_string(length) + "]");
  }
  if (needs_grad && (!a.grad.defined() || a.grad.sizes() != a.probs.sizes())) {
    throw std::runtime_error("explain: no gradient reached an attention map");
  }
}

}  // namespace

torch::Tensor rollout_relevance(const std::vector<AttentionMap>& layers, int64_t length) {
  const auto eye = torch::eye(length, torch::kFloat64);
  auto relevance = eye.clone();
  for (const auto& a : layers) {
    check_map(a, length, false);
    auto hat = 0.5 * as_double(a.probs).mean(0) + 0.5 * eye;  // [T, T]
    hat = hat / hat.sum(-1, true);
    relevance = hat.matmul(relevance);
  }
  return relevance;
}

torch::Tensor chefer_relevance(const std::vector<AttentionMap>& layers, int64_t length) {
  auto relevance = torch::eye(length, torch::kFloat64);
  for (const auto& a : layers) {
    check_map(a, length, true);
    const auto weighted = (as_double(a.grad) * as_double(a.probs)).clamp_min(0).mean(0);  // [T, T]
    relevance = relevance + weighted.matmul(relevance);
  }
  return relevance;
}

torch::Tensor normalize_self_relevance(const torch::Tensor& relevance) {
  TORCH_CHECK(relevance.dim() == 2 && relevance.size(0) == relevance.size(1),
              "normalize_self_relevance: a square matrix, got ", relevance.sizes());
  const auto eye = torch::eye(relevance.size(0), relevance.options());
  const auto rest = relevance - eye;
  const auto sums = rest.sum(-1, true);
  return torch::where(sums > 0, rest / sums.clamp_min(1e-300), torch::zeros_like(rest)) + eye;
}

}  // namespace xmodal::infer
