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

torch::Tensor contrastive_loss_rows(const torch::Tensor& image_embeds,
                                    const torch::Tensor& text_embeds,
                                    const torch::Tensor& logit_scale,
                                    const torch::Tensor& image_keys,
                                    const torch::Tensor& text_keys) {
  TORCH_CHECK(image_embeds.dim() == 2 && image_embeds.sizes() == text_embeds.sizes(),
              "contrastive_loss: image and text embeddings [G, E] differ: ", image_embeds.sizes(),
              " vs ", text_embeds.sizes());
  const int64_t g = image_embeds.size(0);
  TORCH_CHECK(image_keys.numel() == g && text_keys.numel() == g,
              "contrastive_loss: one image key and one text key per pair");
  const auto logits =
      torch::matmul(image_embeds, text_embeds.t()) * logit_scale;  // [images, texts]
  const auto ik = image_keys.to(logits.device()), tk = text_keys.to(logits.device());
  const auto positive =
      (ik.unsqueeze(1) == ik.unsqueeze(0)).logical_or(tk.unsqueeze(1) == tk.unsqueeze(0));
  auto target = positive.to(logits.scalar_type());
  target = target / target.sum(1, true);  // symmetric: the same for both directions
  const auto i2t = -(target * torch::log_softmax(logits, 1)).sum(1);
  const auto t2i = -(target * torch::log_softmax(logits.t(), 1)).sum(1);
  return (i2t + t2i) * 0.5;
}

torch::Tensor itm_loss(const torch::Tensor& logits, int64_t positives, int64_t samples) {
  const int64_t rows = logits.size(0);
  TORCH_CHECK(logits.dim() == 2 && logits.size(1) == 2 && positives <= rows,
              "itm_loss: logits [R, 2] with R >= positives");
  auto labels = torch::zeros({rows}, logits.options().dtype(torch::kLong));
  labels.narrow(0, 0, positives).fill_(1);
  return torch::nn::functional::cross_entropy(
             logits, labels,
             torch::nn::functional::CrossEntropyFuncOptions().reduction(torch::kSum)) *
         (static_cast<double>(samples) / static_cast<double>(rows));
}

torch::Tensor dense_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.sizes() == targets.sizes(), "dense_loss: logits ", logits.sizes(),
              " and targets ", targets.sizes(),
              " differ (the target grid is data.image_size / model.vision.patch_size)");
  const torch::Tensor bce = torch::binary_cross_entropy_with_logits(
      logits, targets.to(logits.scalar_type()), {}, {}, torch::Reduction::None);
  return bce.sum(2).mean(1).sum();
}

torch::Tensor locate_loss(const torch::Tensor& logits, const torch::Tensor& targets) {
  TORCH_CHECK(logits.dim() == 3 && targets.dim() == 2 && logits.size(0) == targets.size(0) &&
                  logits.size(1) == targets.size(1),
              "locate_loss: logits ", logits.sizes(), " and targets ", targets.sizes(), " differ");
  return torch::nn::functional::cross_entropy(
      logits.flatten(0, 1), targets.flatten(),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(-1).reduction(torch::kSum));
}

namespace {

void check_same(const torch::Tensor& student, const torch::Tensor& teacher, const char* what) {
  if (!student.defined() || !teacher.defined() || student.sizes() != teacher.sizes()) {
    throw std::invalid_argument(std::string("distillation: the student's and the teacher's ") +
                                what + " differ in shape (" +
                                (student.defined() ? c10::str(student.sizes()) : "none") + " vs " +
                                (teacher.defined() ? c10::str(teacher.sizes()) : "none") + ")");
  }
}

}  // namespace

torch::Tensor distill_sigmoid(const torch::Tensor& student, const torch::Tensor& teacher,
                              double temperature, double per_sample) {
  check_same(student, teacher, "sigmoid outputs");
  const auto target = torch::sigmoid(teacher.detach().to(student.scalar_type()) / temperature);
  return torch::binary_cross_entropy_with_logits(student / temperature, target, {}, {},
                                                 at::Reduction::Sum) *
         (temperature * temperature / per_sample);
}

torch::Tensor distill_softmax(const torch::Tensor& student, const torch::Tensor& teacher,
                              double temperature, double per_sample) {
  check_same(student, teacher, "softmax outputs");
  const auto log_p =
      torch::log_softmax(teacher.detach().to(student.scalar_type()) / temperature, -1);
  const auto log_q = torch::log_softmax(student / temperature, -1);
  return (log_p.exp() * (log_p - log_q)).sum() * (temperature * temperature / per_sample);
}

torch::Tensor distill_similarity(const torch::Tensor& student, const torch::Tensor& teacher,
                                 double temperature) {
  check_same(student, teacher, "similarity logits");
  TORCH_CHECK(student.dim() == 2, "distill_similarity: logits [B, N]");
  const double texts = static_cast<double>(student.size(0));
  const double images = static_cast<double>(student.size(1));
  const auto rows = distill_softmax(student, teacher, temperature);             // B texts
  const auto columns = distill_softmax(student.t(), teacher.t(), temperature);  // N images
  return (rows + columns * (texts / images)) * 0.5;
}

torch::Tensor distill_features(const torch::Tensor& student, const torch::Tensor& teacher) {
  check_same(student, teacher, "image features");
  TORCH_CHECK(student.dim() == 3, "distill_features: tokens [B, T, D], got ", student.sizes());
  const auto diff = student - teacher.detach().to(student.scalar_type());
  return diff.pow(2).mean({1, 2}).sum();
}

}  // namespace xmodal::models
