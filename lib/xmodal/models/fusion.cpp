#include "xmodal/models/fusion.h"

#include <torch/torch.h>

namespace xmodal::models {

const char* fusion_mode_name(FusionMode mode) {
  switch (mode) {
    case FusionMode::concat:
      return "concat";
    case FusionMode::late:
      return "late";
    case FusionMode::image_only:
      return "image_only";
    case FusionMode::text_only:
      return "text_only";
  }
  return "?";
}

FusionImpl::FusionImpl(const FusionOptions& options_) : options(options_) {
  TORCH_CHECK(options.mode() == FusionMode::late || options.hidden() % options.heads() == 0,
              "Fusion: hidden (", options.hidden(), ") must be divisible by heads (",
              options.heads(), ")");
  reset();
}

void FusionImpl::reset() {
  const int64_t d = options.hidden();
  const FusionMode mode = options.mode();
  if (mode == FusionMode::late) {
    late_fc1 = register_module("late_fc1", Linear(options.text_dim() + options.image_dim(), d));
    late_fc2 = register_module("late_fc2", Linear(d, d));
    return;
  }
  if (uses_text(mode)) text_proj = register_module("text_proj", Linear(options.text_dim(), d));
  if (uses_image(mode)) {
    image_proj = register_module("image_proj", Linear(options.image_dim(), d));
  }
  type_embedding = register_module("type_embedding", torch::nn::Embedding(2, d));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
  layers = register_module(
      "layers", make_encoder_layers(options.layers(),
                                    EncoderLayerOptions(d, options.heads(), options.mlp_dim())
                                        .dropout(options.dropout())
                                        .attention_dropout(options.attention_dropout())
                                        .eps(options.eps())
                                        .norm_first(true)));
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(options.eps())));
  pooler = register_module("pooler", Linear(d, d));
  torch::NoGradGuard no_grad;
  type_embedding->weight.normal_(0.0, 0.02);
  init_trunc_normal_(cls_token, 0.02);
}

FusionOutput FusionImpl::forward(const torch::Tensor& text, const torch::Tensor& text_padding,
                                 const torch::Tensor& image, bool pooled_only,
                                 const torch::Tensor& patch_padding) {
  const FusionMode mode = options.mode();
  if (uses_text(mode)) {
    TORCH_CHECK(text.defined() && text.dim() == 3 && text.size(2) == options.text_dim(), "Fusion (",
                fusion_mode_name(mode), "): expected text tokens [B, L, ", options.text_dim(), "]");
  }
  if (uses_image(mode)) {
    TORCH_CHECK(image.defined() && image.dim() == 3 && image.size(2) == options.image_dim(),
                "Fusion (", fusion_mode_name(mode), "): expected image tokens [B, 1 + P, ",
                options.image_dim(), "]");
  }
  if (mode == FusionMode::late) {
    // [B, Dt + Dv] from each encoder's [CLS] token
    auto both = torch::cat({text.select(1, 0), image.select(1, 0)}, 1);
    return {late_fc2(exact_gelu(late_fc1(both))), {}};
  }
  const int64_t batch = uses_text(mode) ? text.size(0) : image.size(0);
  std::vector<torch::Tensor> parts = {cls_token.expand({batch, 1, options.hidden()})};
  std::vector<torch::Tensor> padding = {
      torch::zeros({batch, 1}, cls_token.options().dtype(torch::kBool))};
  if (uses_text(mode)) {
    // text: [B, L, D] + type 0
    parts.push_back(text_proj(text) + type_embedding->weight[0]);
    padding.push_back(text_padding.defined()
                          ? text_padding.to(torch::kBool)
                          : torch::zeros({batch, text.size(1)}, padding[0].options()));
  }
  if (uses_image(mode)) {
    // image: [B, 1 + P, D] + type 1
    parts.push_back(image_proj(image) + type_embedding->weight[1]);
    if (patch_padding.defined()) {
      TORCH_CHECK(patch_padding.dim() == 2 && patch_padding.size(0) == batch &&
                      patch_padding.size(1) == image.size(1) - 1,
                  "Fusion: patch_padding must be [", batch, ", ", image.size(1) - 1, "], got ",
                  patch_padding.sizes());
      padding.push_back(padding[0]);  // the image [CLS]
      padding.push_back(patch_padding.to(torch::kBool));
    } else {
      padding.push_back(torch::zeros({batch, image.size(1)}, padding[0].options()));
    }
  }
  // x: [B, 1 + L + 1 + P, D]
  auto x = torch::cat(parts, 1);
  const auto mask = torch::cat(padding, 1);
  const auto count = static_cast<int64_t>(layers->size());
  for (int64_t i = 0; i < count; ++i) {
    auto* layer = layers[i]->as<EncoderLayerImpl>();
    const bool cls_row_only = pooled_only && i == count - 1 && !layer->attention->keep_attention;
    x = layer->forward(x, mask, cls_row_only ? 1 : -1);
  }
  x = norm(x);
  const auto pooled = torch::tanh(pooler(x.select(1, 0)));
  return {pooled, pooled_only ? torch::Tensor() : x};
}

}  // namespace xmodal::models
