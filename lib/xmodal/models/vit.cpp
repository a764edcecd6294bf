#include "xmodal/models/vit.h"

#include <torch/torch.h>

#include <cmath>

namespace xmodal::models {

ViTImpl::ViTImpl(const ViTOptions& options_) : options(options_) {
  TORCH_CHECK(options.patch_size() > 0 && options.image_size() > 0, "ViT: image_size (",
              options.image_size(), ") and patch_size (", options.patch_size(),
              ") must be positive");
  TORCH_CHECK(options.image_size() % options.patch_size() == 0, "ViT: image_size (",
              options.image_size(), ") must be divisible by patch_size (", options.patch_size(),
              ")");
  TORCH_CHECK(!options.conv_stem() || (options.patch_size() & (options.patch_size() - 1)) == 0,
              "ViT: a convolutional stem needs a power-of-2 patch_size, got ",
              options.patch_size());
  TORCH_CHECK(options.hidden() % options.heads() == 0, "ViT: hidden_size (", options.hidden(),
              ") must be divisible by num_heads (", options.heads(), ")");
  reset();
}

int64_t ViTImpl::num_patches() const {
  const int64_t grid = options.image_size() / options.patch_size();
  return grid * grid;
}

StemBlockImpl::StemBlockImpl(int64_t in, int64_t out) : in_channels(in), out_channels(out) {
  reset();
}

void StemBlockImpl::reset() {
  conv = register_module(
      "conv",
      torch::nn::Conv2d(
          torch::nn::Conv2dOptions(in_channels, out_channels, 3).stride(2).padding(1).bias(false)));
  norm = register_module("norm", torch::nn::BatchNorm2d(out_channels));
}

torch::Tensor StemBlockImpl::forward(const torch::Tensor& x) { return exact_gelu(norm(conv(x))); }

int64_t ViTImpl::stem_channels() const {
  if (!options.conv_stem()) return options.channels();
  int64_t c = options.channels(), width = options.stem_width();
  for (int64_t s = 1; s < options.patch_size(); s *= 2) {
    c = std::min(width, options.hidden());
    width *= 2;
  }
  return c;
}

void ViTImpl::reset() {
  const int64_t d = options.hidden();
  stem = register_module("stem", torch::nn::ModuleList());
  if (options.conv_stem()) {
    int64_t in = options.channels(), width = options.stem_width();
    for (int64_t s = 1; s < options.patch_size(); s *= 2) {
      const int64_t out = std::min(width, d);
      stem->push_back(StemBlock(in, out));
      in = out;
      width *= 2;
    }
  }
  const int64_t kernel = options.conv_stem() ? 1 : options.patch_size();
  patch_embedding = register_module(
      "patch_embedding",
      torch::nn::Conv2d(torch::nn::Conv2dOptions(stem_channels(), d, kernel).stride(kernel)));
  cls_token = register_parameter("cls_token", torch::zeros({1, 1, d}));
  TORCH_CHECK(!options.sincos_positions() || d % 4 == 0,
              "ViT: sine-cosine positions need hidden a multiple of 4, got ", d);
  position_embedding =
      options.sincos_positions()
          ? torch::Tensor()
          : register_parameter("position_embedding", torch::empty({1, 1 + num_patches(), d}));
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
  if (position_embedding.defined()) position_embedding.normal_(0.0, 0.02);
  const int64_t fan_in = stem_channels() * kernel * kernel;
  auto w = patch_embedding->weight;
  init_trunc_normal_(w, std::sqrt(1.0 / static_cast<double>(fan_in)));
  patch_embedding->bias.zero_();
}

torch::Tensor interpolate_position_embedding(const torch::Tensor& table, int64_t grid_h,
                                             int64_t grid_w) {
  TORCH_CHECK(table.dim() == 3 && table.size(0) == 1,
              "position embeddings: expected [1, 1 + P, D], got ", table.sizes());
  const int64_t d = table.size(2), patches_in = table.size(1) - 1;
  const auto grid = static_cast<int64_t>(std::lround(std::sqrt(static_cast<double>(patches_in))));
  TORCH_CHECK(grid * grid == patches_in, "position embeddings: ", patches_in,
              " patch positions are not a square grid");
  if (grid == grid_h && grid == grid_w) return table;
  auto cls = table.narrow(1, 0, 1);
  // patches: [1, P, D] -> [1, D, grid, grid] -> [1, D, grid_h, grid_w] -> [1, grid_h*grid_w, D]
  auto patches = table.narrow(1, 1, patches_in).reshape({1, grid, grid, d}).permute({0, 3, 1, 2});
  patches =
      torch::nn::functional::interpolate(patches, torch::nn::functional::InterpolateFuncOptions()
                                                      .size(std::vector<int64_t>{grid_h, grid_w})
                                                      .mode(torch::kBicubic)
                                                      .align_corners(false));
  patches = patches.permute({0, 2, 3, 1}).reshape({1, grid_h * grid_w, d});
  return torch::cat({cls, patches}, 1);
}

torch::Tensor sincos_position_embedding(int64_t grid_h, int64_t grid_w, int64_t cells,
                                        int64_t dim) {
  TORCH_CHECK(dim % 4 == 0 && grid_h > 0 && grid_w > 0 && cells > 0,
              "sine-cosine positions: dim a multiple of 4 and positive grids, got dim ", dim,
              ", grid ", grid_h, "x", grid_w);
  const int64_t quarter = dim / 4;
  const auto opts = torch::TensorOptions().dtype(torch::kFloat64);
  const auto omega = torch::pow(10000.0, -torch::arange(quarter, opts) / quarter);  // [D/4]
  const auto along = [&](int64_t n) {  // patch centres in cells of the configured grid
    return (torch::arange(n, opts) + 0.5) * (static_cast<double>(cells) / n);
  };
  const auto x = along(grid_w).unsqueeze(1) * omega;  // [W, D/4]
  const auto y = along(grid_h).unsqueeze(1) * omega;  // [H, D/4]
  const auto xs = torch::cat({x.sin(), x.cos()}, 1).unsqueeze(0).expand({grid_h, grid_w, dim / 2});
  const auto ys = torch::cat({y.sin(), y.cos()}, 1).unsqueeze(1).expand({grid_h, grid_w, dim / 2});
  const auto patches = torch::cat({xs, ys}, 2).reshape({1, grid_h * grid_w, dim});
  return torch::cat({torch::zeros({1, 1, dim}, opts), patches}, 1).to(torch::kFloat32);
}

torch::Tensor ViTImpl::position_embedding_for(int64_t grid_h, int64_t grid_w) const {
  if (!position_embedding.defined()) {  // sine-cosine: a few small ops, not worth a cache
    return sincos_position_embedding(grid_h, grid_w, options.image_size() / options.patch_size(),
                                     options.hidden())
        .to(cls_token.device(), cls_token.scalar_type());
  }
  return interpolate_position_embedding(position_embedding, grid_h, grid_w);
}

torch::Tensor ViTImpl::forward(const torch::Tensor& images, const torch::Tensor& patch_padding) {
  TORCH_CHECK(images.dim() == 4 && images.size(1) == options.channels(),
              "ViT: expected images [B, ", options.channels(), ", H, W], got ", images.sizes());
  const int64_t p = options.patch_size();
  TORCH_CHECK(images.size(2) % p == 0 && images.size(3) % p == 0, "ViT: image size ",
              images.size(2), "x", images.size(3), " is not a multiple of patch_size (", p, ")");
  const int64_t batch = images.size(0);
  // patches: [B, D, H/p, W/p] -> [B, P, D]
  auto x = images;
  for (const auto& block : *stem) x = block->as<StemBlockImpl>()->forward(x);
  x = patch_embedding(x);
  const int64_t grid_h = x.size(2), grid_w = x.size(3);
  x = x.flatten(2).transpose(1, 2);
  // x: [B, 1 + P, D]
  x = torch::cat({cls_token.expand({batch, 1, options.hidden()}), x}, 1);
  x = dropout(x + position_embedding_for(grid_h, grid_w));
  torch::Tensor padding;
  if (patch_padding.defined()) {
    TORCH_CHECK(patch_padding.dim() == 2 && patch_padding.size(0) == batch &&
                    patch_padding.size(1) == grid_h * grid_w,
                "ViT: patch_padding must be [", batch, ", ", grid_h * grid_w, "], got ",
                patch_padding.sizes());
    // padding: [B, 1 + P], the [CLS] token always visible
    padding = torch::cat({torch::zeros({batch, 1}, patch_padding.options().dtype(torch::kBool)),
                          patch_padding.to(torch::kBool)},
                         1);
  }
  x = run_encoder_layers(layers, x, padding);
  return norm(x);
}

}  // namespace xmodal::models
