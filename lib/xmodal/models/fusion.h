// How the two modalities meet (docs/design.md section 3).
//
//   concat      ViLT style: project text and image tokens to the fusion width, add modality-type
//               embeddings (text 0, image 1), prepend a fusion [CLS], run N pre-norm layers
//               over [cls ; text ; image] with a joint padding mask; pooled = tanh(dense(cls)).
//   late        pool each encoder (its [CLS] token), concatenate, 2-layer MLP.
//   image_only  concat over [cls ; image] (no text encoder at all), for ablations.
//   text_only   concat over [cls ; text] (no image encoder at all), for ablations.
//
// Parameter names: text_proj, image_proj, type_embedding, cls_token, layers.N.*, norm,
// pooler (concat modes); late_fc1, late_fc2 (late).
#pragma once

#include <torch/nn.h>

#include "xmodal/models/blocks.h"
#include "xmodal/models/linear.h"

namespace xmodal::models {

enum class FusionMode { concat, late, image_only, text_only };

/// "concat", "late", "image_only", "text_only".
const char* fusion_mode_name(FusionMode mode);

inline bool uses_text(FusionMode m) { return m != FusionMode::image_only; }
inline bool uses_image(FusionMode m) { return m != FusionMode::text_only; }

struct FusionOptions {
  FusionOptions(FusionMode mode, int64_t text_dim, int64_t image_dim, int64_t hidden,
                int64_t layers, int64_t heads, int64_t mlp_dim)
      : mode_(mode),
        text_dim_(text_dim),
        image_dim_(image_dim),
        hidden_(hidden),
        layers_(layers),
        heads_(heads),
        mlp_dim_(mlp_dim) {}
  TORCH_ARG(FusionMode, mode);
  /// Width of the text encoder's tokens (ignored by image_only).
  TORCH_ARG(int64_t, text_dim);
  /// Width of the image encoder's tokens (ignored by text_only).
  TORCH_ARG(int64_t, image_dim);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, layers);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, mlp_dim);
  TORCH_ARG(double, dropout) = 0.0;
  TORCH_ARG(double, attention_dropout) = 0.0;
  TORCH_ARG(double, eps) = 1e-6;
};

struct FusionOutput {
  torch::Tensor pooled;  ///< [B, hidden]
  torch::Tensor tokens;  ///< [B, 1 + L + 1 + P, hidden] for concat modes (undefined for late)
};

class FusionImpl : public torch::nn::Cloneable<FusionImpl> {
 public:
  explicit FusionImpl(const FusionOptions& options);
  void reset() override;

  /// text: [B, L, text_dim] with text_padding [B, L] bool (true = padding) or undefined;
  /// image: [B, 1 + P, image_dim]. The modality a mode does not use may be undefined.
  /// pooled_only: compute only what `pooled` needs (the last layer's [CLS] row: ~3/4 of that
  /// layer's work is skipped) and leave `tokens` undefined; same `pooled` values. Layers that
  /// keep their attention maps (explain) still run in full. patch_padding [B, P] bool (true =
  /// hidden: no token attends to that image patch) or undefined.
  FusionOutput forward(const torch::Tensor& text, const torch::Tensor& text_padding,
                       const torch::Tensor& image, bool pooled_only = false,
                       const torch::Tensor& patch_padding = {});

  int64_t output_dim() const { return options.hidden(); }

  FusionOptions options;
  Linear text_proj = nullptr;
  Linear image_proj = nullptr;
  torch::nn::Embedding type_embedding = nullptr;
  torch::Tensor cls_token;
  torch::nn::ModuleList layers = nullptr;
  torch::nn::LayerNorm norm = nullptr;
  Linear pooler = nullptr;
  Linear late_fc1 = nullptr;
  Linear late_fc2 = nullptr;
};
TORCH_MODULE(Fusion);

}  // namespace xmodal::models
