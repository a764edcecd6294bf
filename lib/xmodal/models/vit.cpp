#include "xmodal/models/vit.h"

#include <torch/torch.h>

namespace xmodal::models {

ViTImpl::ViTImpl(const ViTOptions& options_) : options(options_) {
  TORCH_CHECK(options.patch_size() > 0 && options.image_size() > 0, "ViT: image_size (",
              options.image_size(), ") and patch_size (", options.patch_size(),
              ") must be positive");
  TORCH_CHECK(options.image_size() % options.patch_size() == 0, "ViT: image_size (",
              options.image_size(), ") must be divisible by patch_size (", options.patch_size(),
              ")");
  TORCH_CHECK(options.hidden() % options.heads() == 0, "ViT: hidden_size (", options.hidden(),
              ") must be divisible by num_heads (", options.heads(), ")");
  reset();
}

int64_t ViTImpl::num_patches() const {
  const int64_t grid = options.image_size() / options.patch_size();
  return grid * grid;
}

void ViTImpl::reset() {
  const int64_t d = options.hidden();
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(options.channels(), d, options.patch_size())
                            .stride(options.patch_size())));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
  position_embedding =
      register_parameter("position_embedding", torch::empty({1, 1 + num_patches(), d}));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  layers = register_module(
      "layers", make_encoder_layers(options.layers(),
                                    EncoderLayerOptions(d, options.heads(), options.mlp_dim())
                                        .dropout(options.dropout())
                                        .attention_dropout(options.attention_dropout())
                                        .eps(options.eps())
                                        .norm_first(true)));
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(options.eps())));
  // torchvision's init: position embeddings N(0, 0.02), patch conv truncated normal with
  // std sqrt(1 / fan_in), zero bias.
  torch::NoGradGuard no_grad;
  position_embedding.normal_(0.0, 0.02);
  const int64_t fan_in = options.channels() * options.patch_size() * options.patch_size();
  auto w = patch_embedding->weight;
  init_trunc_normal_(w, std::sqrt(1.0 / static_cast<double>(fan_in)));
  patch_embedding->bias.zero_();
}

torch::Tensor ViTImpl::position_embedding_for(int64_t grid_h, int64_t grid_w) const {
  const int64_t grid = options.image_size() / options.patch_size();
  if (grid_h == grid && grid_w == grid) return position_embedding;
  const int64_t d = options.hidden();
  auto cls = position_embedding.narrow(1, 0, 1);
  // patches: [1, P, D] -> [1, D, grid, grid] -> [1, D, grid_h, grid_w] -> [1, grid_h*grid_w, D]
  auto patches = position_embedding.narrow(1, 1, grid * grid)
                     .reshape({1, grid, grid, d})
                     .permute({0, 3, 1, 2});
  patches =
      torch::nn::functional::interpolate(patches, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{grid_h, grid_w})
                                                      .mode(torch::kBicubic)
                                                      .align_corners(false));
  patches = patches.permute({0, 2, 3, 1}).reshape({1, grid_h * grid_w, d});
  return torch::cat({cls, patches}, 1);
}

torch::Tensor ViTImpl::forward(const torch::Tensor& images) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options.channels(),
              "ViT: expected images [B, ", options.channels(), ", H, W], got ", images.sizes());
  const int64_t p = options.patch_size();
  TORCH_CHECK(images.size(2) % p == 0 && images.size(3) % p == 0, "ViT: image size ",
              images.size(2), "x", images.size(3), " is not a multiple of patch_size (", p, ")");
  const int64_t batch = images.size(0);
  // patches: [B, D, H/p, W/p] -> [B, P, D]
  auto x = patch_embedding(images);
  const int64_t grid_h = x.size(2), grid_w = x.size(3);
  x = x.flatten(2).transpose(1, 2);
  // x: [B, 1 + P, D]
  x = torch::cat({cls_token.expand({batch, 1, options.hidden()}), x}, 1);
  x = dropout(x + position_embedding_for(grid_h, grid_w));
  x = run_encoder_layers(layers, x);
  return norm(x);
}

}  // namespace xmodal::models
