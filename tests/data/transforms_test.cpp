#include "xmodal/data/transforms.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

namespace xmodal::data {
namespace {

cv::Mat gradient_image(int w, int h) {
  cv::Mat m(h, w, CV_8UC3);
  for (int y = 0; y < h; ++y) {
    for (int x = 0; x < w; ++x)
      m.at<cv::Vec3b>(y, x) = {static_cast<uint8_t>(x * 255 / (w - 1)), 128, 0};
  }
  return m;
}

TEST(Transforms, ResizeAndNormalise) {
  ImageTransformOptions o;
  o.size = 8;
  std::mt19937_64 rng(1);
  const auto out = transform_image(gradient_image(32, 16), o, rng);
  EXPECT_EQ(out.pixels.sizes(), torch::IntArrayRef({3, 8, 8}));
  EXPECT_FALSE(out.flipped);
  // channel 1 is 128/255 everywhere: (0.502 - 0.5) / 0.5
  EXPECT_NEAR(out.pixels[1].mean().item<float>(), (128 / 255.0 - 0.5) / 0.5, 1e-5);
  EXPECT_LT(out.pixels[0][0][0].item<float>(), out.pixels[0][0][7].item<float>());  // left dark
  o.shorter_side = true;
  EXPECT_EQ(transform_image(gradient_image(32, 16), o, rng).pixels.sizes(),
            torch::IntArrayRef({3, 8, 8}));
}

// The one-pass conversion gives the bits of the ATen composition it replaced: uint8 HWC ->
// float CHW / 255, then (x - mean) / std; also with colour jitter, and without a resize (an
// image already at the size is read in place and left unchanged, flip included).
TEST(Transforms, ConversionEqualsTheAtenOpsBitForBit) {
  cv::Mat image(24, 24, CV_8UC3);
  cv::randu(image, 0, 256);
  const cv::Mat before = image.clone();
  ImageTransformOptions o;
  o.size = 24;
  o.mean = {0.485f, 0.456f, 0.406f};
  o.std = {0.229f, 0.224f, 0.225f};
  const auto mean = torch::tensor({o.mean[0], o.mean[1], o.mean[2]}).view({3, 1, 1});
  const auto stddev = torch::tensor({o.std[0], o.std[1], o.std[2]}).view({3, 1, 1});
  const auto aten = [&](const cv::Mat& m) {
    const auto t = torch::from_blob(m.data, {m.rows, m.cols, 3}, torch::kUInt8)
                       .permute({2, 0, 1})
                       .to(torch::kFloat32)
                       .div_(255.0);
    return ((t - mean) / stddev).contiguous();
  };
  std::mt19937_64 rng(2);
  EXPECT_TRUE(torch::equal(transform_image(image, o, rng).pixels, aten(image)));
  o.train = true;
  o.hflip = true;
  for (int i = 0; i < 4; ++i) {
    const auto out = transform_image(image, o, rng);
    cv::Mat expected = image.clone();
    if (out.flipped) cv::flip(image, expected, 1);
    EXPECT_TRUE(torch::equal(out.pixels, aten(expected))) << i;
  }
  EXPECT_EQ(cv::norm(image, before, cv::NORM_INF), 0.0);  // the input is never written
  // colour jitter keeps its ATen path on top of the same conversion
  o.hflip = false;
  o.color_jitter = 0.3;
  std::mt19937_64 a(9), b(9);
  const auto jittered = transform_image(image, o, a).pixels;
  EXPECT_EQ(jittered.sizes(), torch::IntArrayRef({3, 24, 24}));
  EXPECT_TRUE(torch::equal(jittered, transform_image(image, o, b).pixels));
}

TEST(Transforms, FlipMirrorsTheImageAndTheTextStaysTrue) {
  ImageTransformOptions o;
  o.size = 8;
  o.train = true;
  o.hflip = true;
  int flips = 0;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    std::mt19937_64 rng(seed);
    const auto out = transform_image(gradient_image(8, 8), o, rng);
    const float left = out.pixels[0][0][0].item<float>(), right = out.pixels[0][0][7].item<float>();
    EXPECT_EQ(out.flipped, left > right);  // mirrored exactly when reported
    flips += out.flipped;
  }
  EXPECT_GT(flips, 3);
  EXPECT_LT(flips, 17);
  EXPECT_EQ(swap_left_right("What is the leftmost item? Left of the bag, right."),
            "What is the rightmost item? Right of the bag, left.");
  EXPECT_EQ(swap_left_right("leftover bright"), "leftover bright");  // whole words only
}

TEST(Transforms, RegionMapsInputPointsToWhereTheyLand) {
  // A bright 11x11 dot on black: wherever zoom-out, crop, resize and flip put it, the reported
  // region must say the same (11 px: still one bright output pixel after a 5x reduction).
  cv::Mat image = cv::Mat::zeros(60, 80, CV_8UC3);
  const int dot_x = 50, dot_y = 20;
  image(cv::Rect(dot_x - 5, dot_y - 5, 11, 11)).setTo(cv::Scalar(255, 255, 255));
  ImageTransformOptions o;
  o.size = 40;
  o.train = true;
  o.hflip = true;
  o.random_resized_crop = true;
  o.crop_scale_min = 0.5;
  int seen = 0;
  for (uint64_t seed = 0; seed < 40; ++seed) {
    for (bool shorter : {false, true}) {
      o.shorter_side = shorter;
      o.random_resized_crop = seed % 4 != 0;  // also the plain resize and centre crop
      o.zoom_out_min = 1.0;
      o.zoom_out_max = seed % 3 == 0 ? 2.5 : 0.0;  // and with the image pasted on a larger canvas
      std::mt19937_64 rng(seed);
      const auto out = transform_image(image, o, rng);
      double u = (dot_x + 0.5 - out.region.x) / out.region.width;
      const double v = (dot_y + 0.5 - out.region.y) / out.region.height;
      if (out.flipped) u = 1 - u;
      if (u < 0.05 || u > 0.95 || v < 0.05 || v > 0.95) continue;  // cropped away (or nearly)
      const auto px = static_cast<int64_t>(u * o.size), py = static_cast<int64_t>(v * o.size);
      EXPECT_GT(out.pixels[0][py][px].item<float>(), 0.0f) << "seed " << seed;
      ++seen;
    }
  }
  EXPECT_GT(seen, 20);
}

TEST(Transforms, AugmentationIsDeterministicPerSeed) {
  ImageTransformOptions o;
  o.size = 16;
  o.train = true;
  o.hflip = true;
  o.random_resized_crop = true;
  o.color_jitter = 0.4;
  std::mt19937_64 a(mix_seed(1, 2, 3)), b(mix_seed(1, 2, 3)), c(mix_seed(1, 2, 4));
  const auto image = gradient_image(40, 30);
  const auto x = transform_image(image, o, a).pixels;
  EXPECT_TRUE(torch::equal(x, transform_image(image, o, b).pixels));
  EXPECT_FALSE(torch::equal(x, transform_image(image, o, c).pixels));
}

}  // namespace
}  // namespace xmodal::data
