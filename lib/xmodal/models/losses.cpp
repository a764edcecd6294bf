#include "xmodal/models/losses.h"

#include <stdexcept>

namespace xmodal::models {

LossSums vqa_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  if (logits.sizes() != targets.sizes()) {
    throw std::invalid_argument("vqa_loss: logits and targets differ in shape");
  }
  LossSums out;
  out.total =
      torch::binary_cross_entropy_with_logits(logits, targets.to(logits.scalar_type()),
                                              /*weight=*/{}, /*pos_weight=*/{}, at::Reduction::Sum);
  return out;
}

LossSums counting_loss(const torch::Tensor& presence, const torch::Tensor& counts,
                       const torch::Tensor& targets, const torch::Tensor& crowd,
                       const LossWeights& weights) {
  if (presence.dim() != 2 || counts.dim() != 3 || targets.sizes() != presence.sizes() ||
      counts.size(0) != presence.size(0) || counts.size(1) != presence.size(1)) {
    throw std::invalid_argument(
        "counting_loss: presence [B, C], counts [B, C, K+1] and targets "
        "[B, C] do not match");
  }
  const int64_t categories = presence.size(1);
  const int64_t max_count = counts.size(2) - 1;
  const torch::Tensor clamped = targets.clamp(0, max_count);
  torch::Tensor present = clamped > 0;
  torch::Tensor known = torch::ones_like(present);
  if (crowd.defined()) {
    present = present.logical_or(crowd);
    known = crowd.logical_not();
  }
  const torch::Tensor bce = torch::binary_cross_entropy_with_logits(
      presence, present.to(presence.scalar_type()), {}, {}, at::Reduction::Sum);
  const torch::Tensor ce =
      torch::nn::functional::cross_entropy(
          counts.reshape({-1, max_count + 1}), clamped.reshape({-1}),
          torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kNone))
          .mul(known.reshape({-1}).to(counts.scalar_type()))
          .sum();
  const double per_category = 1.0 / static_cast<double>(categories);
  LossSums out;
  out.presence = (bce * per_category).detach();
  out.count = (ce * per_category).detach();
  out.total = bce * (per_category * weights.presence) + ce * (per_category * weights.count);
  return out;
}

LossSums classify_loss(const torch::Tensor& logits, const torch::Tensor& labels) {
  LossSums out;
  out.total = torch::nn::functional::cross_entropy(
      logits, labels, torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum));
  return out;
}

torch::Tensor dense_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.sizes() == targets.sizes(), "dense_loss: logits ", logits.sizes(),
              " and targets ", targets.sizes(),
              " differ (the target grid is data.image_size / model.vision.patch_size)");
  const torch::Tensor bce = torch::binary_cross_entropy_with_logits(
      logits, targets.to(logits.scalar_type()), {}, {}, torch::Reduction::None);
  return bce.sum(2).mean(1).sum();
}

}  // namespace xmodal::models
