// An input of infer::Predictor made ready for the model, and embeddings it computes (apart
// from predictor.h, which the commands include without LibTorch's headers).
#pragma once

#include <torch/torch.h>

#include <array>
#include <cstdint>
#include <vector>

namespace xmodal::infer {

/// The image through the evaluation transform and the text tokenised (what `xmodal serve` does
/// on its HTTP threads, before batching). Either may be missing for Predictor::embed.
struct PreparedInput {
  torch::Tensor pixels;                   ///< [3, S, S] float32, or undefined (no image)
  std::vector<int64_t> ids, mask, types;  ///< max_text_len each, or empty (no text)
  bool has_text = false;
  /// The part of the input image `pixels` shows, in its pixels: x, y, width, height (what
  /// data::TransformedImage::region says), and the input's width and height.
  std::array<double, 4> region{};
  int width = 0, height = 0;
  /// One flag per image patch (row-major), 1 = hidden from every attention layer
  /// (models::Model's patch_padding); empty = all visible.
  std::vector<uint8_t> hidden_patches;
};

/// Per item of Predictor::embed: its image's and its text's L2-normalised embedding [E]
/// (undefined where the item has none).
struct Embeddings {
  std::vector<torch::Tensor> image, text;
};

}  // namespace xmodal::infer
