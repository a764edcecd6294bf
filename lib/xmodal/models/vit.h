// Vision Transformer (Dosovitskiy et al.): patches -> tokens -> pre-norm encoder.
//
// Parameter names (a file format; torchvision and Hugging Face names map onto them in
// models/import.h):
//   patch_embedding.{weight,bias}   Conv2d(channels, hidden, patch, stride patch), or with a
//                                   convolutional stem a 1x1 Conv2d(stem channels, hidden)
//   stem.N.*                        optional stem: log2(patch) blocks of 3x3 stride-2 Conv2d
//                                   (stem.N.conv) + BatchNorm (stem.N.norm) + GELU
//   cls_token                       [1, 1, hidden]
//   position_embedding              [1, 1 + P, hidden], P = (image_size / patch_size)^2; absent
//                                   with sincos_positions
//   layers.N.*                      EncoderLayer (pre-norm), see blocks.h
//   norm.{weight,bias}              final LayerNorm
#pragma once

#include <torch/nn.h>

#include "xmodal/models/blocks.h"

namespace xmodal::models {

struct ViTOptions {
  ViTOptions(int64_t image_size, int64_t patch_size, int64_t hidden, int64_t layers, int64_t heads,
             int64_t mlp_dim)
      : image_size_(image_size),
        patch_size_(patch_size),
        hidden_(hidden),
        layers_(layers),
        heads_(heads),
        mlp_dim_(mlp_dim) {}
  /// Side of the square images the position embeddings are laid out for.
  TORCH_ARG(int64_t, image_size);
  TORCH_ARG(int64_t, patch_size);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, layers);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, mlp_dim);
  /// Input channels.
  TORCH_ARG(int64_t, channels) = 3;
  /// Dropout after the embeddings and inside every layer.
  TORCH_ARG(double, dropout) = 0.0;
  /// Dropout on attention probabilities.
  TORCH_ARG(double, attention_dropout) = 0.0;
  /// LayerNorm epsilon (torchvision 1e-6; Hugging Face ViT 1e-12).
  TORCH_ARG(double, eps) = 1e-6;
  /// Convolutional stem (Xiao et al. 2021, "Early convolutions help transformers see better")
  /// instead of the linear patch embedding: log2(patch_size) blocks of 3x3 stride-2 convolution
  /// + BatchNorm + GELU, widths stem_width, 2 x stem_width, ... (at most hidden), then a 1x1
  /// projection to hidden. Same token grid as the patch embedding. patch_size must be a power
  /// of 2.
  TORCH_ARG(bool, conv_stem) = false;
  TORCH_ARG(int64_t, stem_width) = 32;
  /// Fixed 2D sine-cosine position embeddings (MAE's, on each patch centre in units of the
  /// image_size grid's cells, so that a grid of another size covers the same image) instead of
  /// the learned table: exact for any grid, no parameters. hidden must be a multiple of 4.
  TORCH_ARG(bool, sincos_positions) = false;
};

/// 2D sine-cosine position embeddings [1, 1 + grid_h * grid_w, dim] (the [CLS] entry zero):
/// for the patch in row i, column j at x = (j + 1/2) * cells / grid_w, y = (i + 1/2) *
/// cells / grid_h, the dim / 4 frequencies w_k = 10000^(-k / (dim / 4)) give
/// [sin(x w), cos(x w), sin(y w), cos(y w)]. dim must be a multiple of 4.
torch::Tensor sincos_position_embedding(int64_t grid_h, int64_t grid_w, int64_t cells, int64_t dim);

/// One stem block: 3x3 stride-2 convolution, BatchNorm, GELU.
class StemBlockImpl : public torch::nn::Cloneable<StemBlockImpl> {
 public:
  StemBlockImpl(int64_t in_channels, int64_t out_channels);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  int64_t in_channels, out_channels;
  torch::nn::Conv2d conv = nullptr;
  torch::nn::BatchNorm2d norm = nullptr;
};
TORCH_MODULE(StemBlock);

/// A ViT position-embedding table [1, 1 + g*g, D] resized to a grid_h x grid_w patch grid
/// (bicubic, align_corners false, as timm and Hugging Face do); the [CLS] entry is kept.
torch::Tensor interpolate_position_embedding(const torch::Tensor& table, int64_t grid_h,
                                             int64_t grid_w);

class ViTImpl : public torch::nn::Cloneable<ViTImpl> {
 public:
  explicit ViTImpl(const ViTOptions& options);
  void reset() override;

  /// images: [B, C, H, W] with H, W multiples of patch_size -> [B, 1 + P, hidden] after the
  /// final LayerNorm. Another size than image_size interpolates the position embeddings.
  /// patch_padding [B, P] bool (true = hidden: no token attends to that patch; explanations
  /// and their tests) or undefined.
  torch::Tensor forward(const torch::Tensor& images, const torch::Tensor& patch_padding = {});

  /// Position embeddings for a grid_h x grid_w patch grid: [1, 1 + grid_h * grid_w, hidden]
  /// (bicubic interpolation of the trained grid, the class token's entry kept; or the
  /// sine-cosine ones).
  torch::Tensor position_embedding_for(int64_t grid_h, int64_t grid_w) const;

  int64_t output_dim() const { return options.hidden(); }
  int64_t num_patches() const;

  /// Channels the stem hands to patch_embedding (the image channels without a stem).
  int64_t stem_channels() const;

  ViTOptions options;
  torch::nn::ModuleList stem = nullptr;  ///< empty unless conv_stem
  torch::nn::Conv2d patch_embedding = nullptr;
  torch::Tensor cls_token;
  torch::Tensor position_embedding;  ///< undefined with sincos_positions
  torch::nn::Dropout dropout = nullptr;
  torch::nn::ModuleList layers = nullptr;
  torch::nn::LayerNorm norm = nullptr;
};
TORCH_MODULE(ViT);

}  // namespace xmodal::models
