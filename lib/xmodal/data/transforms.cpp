#include "xmodal/data/transforms.h"

#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cctype>
#include <cmath>

namespace xmodal::data {
namespace {

double uniform(std::mt19937_64& rng, double lo, double hi) {
  // 53 random bits -> [0, 1); spelled out so results do not depend on the standard library.
  const double u = static_cast<double>(rng() >> 11) * (1.0 / 9007199254740992.0);
  return lo + (hi - lo) * u;
}

uint64_t splitmix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

cv::Rect random_crop(int w, int h, double scale_min, std::mt19937_64& rng) {
  const double area = static_cast<double>(w) * h;
  for (int attempt = 0; attempt < 10; ++attempt) {
    const double target = area * uniform(rng, scale_min, 1.0);
    const double log_ratio = uniform(rng, std::log(3.0 / 4.0), std::log(4.0 / 3.0));
    const double ratio = std::exp(log_ratio);
    const int cw = static_cast<int>(std::round(std::sqrt(target * ratio)));
    const int ch = static_cast<int>(std::round(std::sqrt(target / ratio)));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
      const int x = static_cast<int>(uniform(rng, 0, w - cw + 1));
      const int y = static_cast<int>(uniform(rng, 0, h - ch + 1));
      return {std::min(x, w - cw), std::min(y, h - ch), cw, ch};
    }
  }
  return {0, 0, w, h};
}

}  // namespace

uint64_t mix_seed(uint64_t a, uint64_t b, uint64_t c) {
  return splitmix(splitmix(splitmix(a) ^ b) ^ c);
}

TransformedImage transform_image(const cv::Mat& rgb, const ImageTransformOptions& o,
                                 std::mt19937_64& rng) {
  TORCH_CHECK(!rgb.empty() && rgb.type() == CV_8UC3, "transform_image: expected 8-bit RGB");
  cv::Mat image = rgb;
  TransformedImage out;
  out.region = cv::Rect2d(0, 0, rgb.cols, rgb.rows);
  if (o.zoom_out_max >= 1.0) {
    // Training draws the ratio and the place; evaluation uses the middle ratio, centred.
    const double lo = std::max(1.0, o.zoom_out_min);
    const double ratio = o.train ? uniform(rng, lo, o.zoom_out_max) : (lo + o.zoom_out_max) / 2;
    const int w = static_cast<int>(std::round(rgb.cols * ratio));
    const int h = static_cast<int>(std::round(rgb.rows * ratio));
    const int x =
        o.train ? static_cast<int>(uniform(rng, 0, w - rgb.cols + 1)) : (w - rgb.cols) / 2;
    const int y =
        o.train ? static_cast<int>(uniform(rng, 0, h - rgb.rows + 1)) : (h - rgb.rows) / 2;
    cv::Mat canvas = cv::Mat::zeros(h, w, rgb.type());
    rgb.copyTo(
        canvas(cv::Rect(std::min(x, w - rgb.cols), std::min(y, h - rgb.rows), rgb.cols, rgb.rows)));
    image = canvas;
    // In input pixels, the canvas spans [-x, w - x) x [-y, h - y).
    out.region = cv::Rect2d(-std::min(x, w - rgb.cols), -std::min(y, h - rgb.rows), w, h);
  }
  if (o.train && o.random_resized_crop) {
    const cv::Rect crop = random_crop(image.cols, image.rows, o.crop_scale_min, rng);
    image = image(crop);
    out.region = cv::Rect2d(out.region.x + crop.x, out.region.y + crop.y, crop.width, crop.height);
  }
  cv::Mat resized;
  if (o.shorter_side && !(o.train && o.random_resized_crop)) {
    const double scale = static_cast<double>(o.size) / std::min(image.cols, image.rows);
    const int w = std::max(o.size, static_cast<int>(std::round(image.cols * scale)));
    const int h = std::max(o.size, static_cast<int>(std::round(image.rows * scale)));
    cv::resize(image, resized, {w, h}, 0, 0, cv::INTER_AREA);
    resized = resized(cv::Rect((w - o.size) / 2, (h - o.size) / 2, o.size, o.size)).clone();
    const double sx = static_cast<double>(image.cols) / w, sy = static_cast<double>(image.rows) / h;
    out.region = cv::Rect2d(out.region.x + (w - o.size) / 2 * sx,
                            out.region.y + (h - o.size) / 2 * sy, o.size * sx, o.size * sy);
  } else if (image.cols == o.size && image.rows == o.size) {
    resized = image;  // already the size (a resize would only copy); read, never written
  } else {
    const bool shrinking = image.cols >= o.size && image.rows >= o.size;
    cv::resize(image, resized, {o.size, o.size}, 0, 0,
               shrinking ? cv::INTER_AREA : cv::INTER_LINEAR);
  }
  if (o.train && o.hflip && uniform(rng, 0, 1) < 0.5) {
    cv::Mat flipped;  // a new image: `resized` may be the caller's
    cv::flip(resized, flipped, 1);
    resized = flipped;
    out.flipped = true;
  }
  const bool jitter = o.train && o.color_jitter > 0;
  // [H, W, 3] uint8 -> [3, H, W] float, (v / 255 - mean) / std (without jitter; v / 255 with
  // it): one pass through a table of the 256 values per channel, computed with the same float
  // operations in the same order as ATen's ops did, so the same bits, ~10x faster than seven
  // ATen ops and their temporaries on a 96 px image.
  float table[3][256];
  for (int c = 0; c < 3; ++c) {
    for (int v = 0; v < 256; ++v) {
      const float scaled = static_cast<float>(v) / 255.0f;
      table[c][v] = jitter ? scaled : (scaled - o.mean[c]) / o.std[c];
    }
  }
  torch::Tensor t = torch::empty({3, o.size, o.size}, torch::kFloat32);
  float* dst = t.data_ptr<float>();
  const int64_t plane = static_cast<int64_t>(o.size) * o.size;
  for (int y = 0; y < o.size; ++y) {
    const uint8_t* row = resized.ptr<uint8_t>(y);
    float* r = dst + static_cast<int64_t>(y) * o.size;
    float* g = r + plane;
    float* b = g + plane;
    for (int x = 0; x < o.size; ++x) {
      r[x] = table[0][row[3 * x]];
      g[x] = table[1][row[3 * x + 1]];
      b[x] = table[2][row[3 * x + 2]];
    }
  }
  if (!jitter) {
    out.pixels = t;
    return out;
  }
  const double j = o.color_jitter;
  const float brightness = static_cast<float>(uniform(rng, 1 - j, 1 + j));
  const float contrast = static_cast<float>(uniform(rng, 1 - j, 1 + j));
  const float saturation = static_cast<float>(uniform(rng, 1 - j, 1 + j));
  t.mul_(brightness).clamp_(0, 1);
  auto grey = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0);  // [1, H, W]
  t = (grey.mean() + (t - grey.mean()) * contrast).clamp_(0, 1);
  grey = (0.299 * t[0] + 0.587 * t[1] + 0.114 * t[2]).unsqueeze(0);
  t = (grey + (t - grey) * saturation).clamp_(0, 1);
  const auto mean = torch::tensor({o.mean[0], o.mean[1], o.mean[2]}).view({3, 1, 1});
  const auto stddev = torch::tensor({o.std[0], o.std[1], o.std[2]}).view({3, 1, 1});
  out.pixels = ((t - mean) / stddev).contiguous();
  return out;
}

std::string swap_left_right(const std::string& text) {
  std::string out;
  size_t i = 0;
  while (i < text.size()) {
    if (!std::isalpha(static_cast<unsigned char>(text[i]))) {
      out += text[i++];
      continue;
    }
    size_t j = i;
    while (j < text.size() && std::isalpha(static_cast<unsigned char>(text[j]))) ++j;
    std::string word = text.substr(i, j - i);
    std::string lower = word;
    for (auto& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    std::string swapped;
    if (lower == "left") swapped = "right";
    if (lower == "right") swapped = "left";
    if (lower == "leftmost") swapped = "rightmost";
    if (lower == "rightmost") swapped = "leftmost";
    if (!swapped.empty()) {
      if (std::isupper(static_cast<unsigned char>(word[0]))) {
        swapped[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(swapped[0])));
      }
      word = swapped;
    }
    out += word;
    i = j;
  }
  return out;
}

}  // namespace xmodal::data
