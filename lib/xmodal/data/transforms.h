// Image pipeline: RGB pixels -> normalised float tensor [3, H, W], with training augmentation.
#pragma once

#include <torch/types.h>
#include <opencv2/core.hpp>

#include <array>
#include <cstdint>
#include <random>
#include <string>

namespace xmodal::data {

struct ImageTransformOptions {
  int size = 96;              ///< output side
  bool shorter_side = false;  ///< scale the shorter side to `size`, centre crop (else stretch)
  std::array<float, 3> mean = {0.5f, 0.5f, 0.5f};
  std::array<float, 3> std = {0.5f, 0.5f, 0.5f};
  bool train = false;                ///< apply the augmentations below
  bool random_resized_crop = false;  ///< crop area in [crop_scale_min, 1], aspect 3/4..4/3
  double crop_scale_min = 0.6;
  bool hflip = false;         ///< mirror with probability 1/2
  double color_jitter = 0.0;  ///< brightness/contrast/saturation factors in [1-j, 1+j]
  /// Canvas side / image side drawn in [zoom_out_min, zoom_out_max]; the image is pasted at a
  /// random place on a black canvas that large (first of all). Without `train`: the middle
  /// ratio, centred. 0 = off.
  double zoom_out_min = 0.0, zoom_out_max = 0.0;
};

struct TransformedImage {
  torch::Tensor pixels;  ///< [3, size, size] float32, normalised
  bool flipped = false;  ///< mirrored: the caller swaps left/right in the text
  /// The part of the input image the output shows (crops included), in input pixels: an input
  /// point (x, y) lands at ((x - region.x) / region.width, (y - region.y) / region.height) of the
  /// output, mirrored horizontally when `flipped`.
  cv::Rect2d region;
};

/// Applies the pipeline to an 8-bit RGB image. Deterministic for a given `rng` state.
TransformedImage transform_image(const cv::Mat& rgb, const ImageTransformOptions& options,
                                 std::mt19937_64& rng);

/// Swaps the words left <-> right (and leftmost <-> rightmost), keeping case, so a mirrored
/// image's caption or question stays true (as ALBEF does).
std::string swap_left_right(const std::string& text);

/// A well-mixed 64-bit seed from several numbers (SplitMix64), for per-sample RNGs that do not
/// depend on which worker thread draws them.
uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c = 0);

}  // namespace xmodal::data
