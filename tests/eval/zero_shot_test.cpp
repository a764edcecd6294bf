// eval::run_zero_shot with the checkpoint of an untrained tiny retrieval model, against the
// classification computed here: per class the mean of its prompts' text embeddings,
// normalised; each image the class of the most similar one; top-1 / top-5 and per class, on an
// image folder and on Fashion-MNIST IDX files written here; zoom-out; metrics.json; refusals.
#include "xmodal/eval/zero_shot.h"

#include <fmt/format.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <cmath>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "../support/checkpoints.h"
#include "../support/fixtures.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/scenes.h"
#include "xmodal/data/transforms.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/models/dual_encoder.h"

namespace xmodal::eval {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using xmodal::testing::error_of;
using xmodal::testing::TempDir;

// What run_zero_shot should report, computed image by image.
struct Expected {
  double top1 = 0, top5 = 0;
  std::vector<int64_t> per_class_n, per_class_hit;
};

class ZeroShot : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new TempDir();
    const auto scenes = shared_->path() / "scenes";
    // 40 training scenes: their texts name every Fashion-MNIST class, so the tokenizer knows
    // each (an unknown name is [UNK], and classes of unknown names tie)
    auto fixture = xmodal::testing::retrieval_scenes(
        xmodal::testing::tiny_scenes(scenes, 40, 2, 1, 5), (shared_->path() / "run").string());
    images_ = std::move(fixture.images);
    checkpoint_ = std::move(fixture.checkpoint);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
    images_.clear();
  }
  void SetUp() override { log::set_level(log::Level::error); }
  void TearDown() override { log::set_level(log::Level::info); }

  // ROOT/test/<class>/<i>.png: class c holds images_[c] (one image each).
  std::string image_folder(const std::vector<std::string>& classes) const {
    const auto root = dir_.path() / "folder";
    for (size_t c = 0; c < classes.size(); ++c) {
      fs::create_directories(root / "test" / classes[c]);
      fs::copy_file(images_.at(c), root / "test" / classes[c] / "0.png");
    }
    return root.string();
  }

  // classify() of image_folder(classes): class c's one image, images_[c].
  static Expected classify_folder(const std::vector<std::string>& classes, double zoom_out) {
    std::vector<cv::Mat> rgb;
    std::vector<int64_t> labels;
    for (size_t c = 0; c < classes.size(); ++c) {
      rgb.push_back(io::read_image_rgb(images_[c]));
      labels.push_back(static_cast<int64_t>(c));
    }
    return classify(rgb, labels, classes, zoom_out);
  }

  // The classifier by hand: each class's prompts embedded, averaged and normalised; each image
  // through the evaluation transform of `config` (zoom-out as run_zero_shot sets it).
  static Expected classify(const std::vector<cv::Mat>& rgb, const std::vector<int64_t>& labels,
                           const std::vector<std::string>& classes, double zoom_out) {
    auto m = checkpoint::load_trained_model(checkpoint_);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> class_rows;
    for (const auto& name : classes) {
      std::vector<std::string> texts;
      for (const auto& t : m.config.eval.prompts) {
        const auto at = t.find("{}");
        texts.push_back(t.substr(0, at) + name + t.substr(at + 2));
      }
      const auto mean = infer::embed_texts(m, texts, torch::kCPU).mean(0);
      class_rows.push_back(mean / mean.norm());
    }
    const auto text = torch::stack(class_rows);  // [C, E]
    auto c = m.config;
    c.data.augment.zoom_out =
        zoom_out > 0 ? std::vector<double>{zoom_out, zoom_out} : std::vector<double>{};
    const auto transform = data::loader_options(c, /*train=*/false).transform;
    std::vector<torch::Tensor> pixels;
    for (const auto& image : rgb) {
      std::mt19937_64 rng(0);
      pixels.push_back(data::transform_image(image, transform, rng).pixels);
    }
    const auto scores =
        torch::matmul(models::embed_images(*m.model, torch::stack(pixels)), text.t());
    Expected e;
    e.per_class_n.assign(classes.size(), 0);
    e.per_class_hit.assign(classes.size(), 0);
    const auto k = std::min<int64_t>(5, static_cast<int64_t>(classes.size()));
    for (size_t i = 0; i < labels.size(); ++i) {
      const auto row = scores[static_cast<int64_t>(i)];
      const double own = row[labels[i]].item<double>();
      // the comparison means something only where no other class ties with the true one
      const auto others = torch::cat(
          {row.narrow(0, 0, labels[i]), row.narrow(0, labels[i] + 1, row.size(0) - labels[i] - 1)});
      EXPECT_GT((others - own).abs().min().item<double>(), 1e-6)
          << "image " << i << ": a class ties with the true one " << row;
      // the number of classes scored above the true one
      const int64_t above = row.gt(own).sum().item<int64_t>();
      e.top1 += above == 0;
      e.top5 += above < k;
      e.per_class_n[labels[i]] += 1;
      e.per_class_hit[labels[i]] += above == 0;
    }
    e.top1 *= 100.0 / labels.size();
    e.top5 *= 100.0 / labels.size();
    return e;
  }

  static TempDir* shared_;
  static std::vector<std::string> images_;  // the scenes images, sorted
  static std::string checkpoint_;
  TempDir dir_;
};
TempDir* ZeroShot::shared_ = nullptr;
std::vector<std::string> ZeroShot::images_;
std::string ZeroShot::checkpoint_;

TEST_F(ZeroShot, AnImageFolderIsClassifiedByItsMostSimilarPrompts) {
  // six classes (sorted folder names), one image each: top-5 leaves out one class in six
  const std::vector<std::string> classes = {"bag", "coat", "dress", "sandal", "shirt", "sneaker"};
  ZeroShotOptions o;
  o.checkpoint = checkpoint_;
  o.dataset = "image_folder";
  o.data_root = image_folder(classes);
  const auto s = run_zero_shot(o);
  const auto e = classify_folder(classes, 0);
  EXPECT_EQ(s.images, 6);
  ASSERT_EQ(s.metrics.size(), 2u);
  EXPECT_NEAR(s.metrics.at("top1"), e.top1, 1e-9);
  EXPECT_NEAR(s.metrics.at("top5"), e.top5, 1e-9);
  EXPECT_GE(s.metrics.at("top5"), s.metrics.at("top1"));
  EXPECT_EQ(s.table.rfind(fmt::format("zero-shot image_folder (6 images, 6 classes): top-1 "
                                      "{:.2f}%, top-5 {:.2f}%\n",
                                      e.top1, e.top5),
                          0),
            0u)
      << s.table;

  // metrics.json in CKPT/zero-shot-DATASET-SPLIT
  EXPECT_EQ(s.out_dir, (fs::path(checkpoint_) / "zero-shot-image_folder-test").string());
  const auto j = json::parse(io::read_file((fs::path(s.out_dir) / "metrics.json").string()));
  EXPECT_EQ(j["zero_shot"], "image_folder");
  EXPECT_EQ(j["split"], "test");
  EXPECT_EQ(j["data_root"], o.data_root);
  EXPECT_EQ(j["images"], 6);
  EXPECT_EQ(j["zoom_out"], 0.0);
  EXPECT_EQ(j["prompts"], json(checkpoint::load_trained_model(checkpoint_).config.eval.prompts));
  EXPECT_NEAR(j["metrics"]["top1"].get<double>(), e.top1, 1e-9);
  for (size_t c = 0; c < classes.size(); ++c) {
    EXPECT_EQ(j["per_class_top1"][classes[c]].get<double>(), e.per_class_hit[c] ? 100.0 : 0.0)
        << classes[c];
  }
}

TEST_F(ZeroShot, ZoomOutPastesEachImageOnACanvasFirst) {
  const std::vector<std::string> classes = {"bag", "coat", "dress", "sandal", "shirt", "sneaker"};
  ZeroShotOptions o;
  o.checkpoint = checkpoint_;
  o.dataset = "image_folder";
  o.data_root = image_folder(classes);
  o.zoom_out = 2.5;
  o.out_dir = (dir_.path() / "out").string();
  const auto s = run_zero_shot(o);
  const auto e = classify_folder(classes, 2.5);
  EXPECT_NEAR(s.metrics.at("top1"), e.top1, 1e-9);
  EXPECT_NEAR(s.metrics.at("top5"), e.top5, 1e-9);
  EXPECT_EQ(s.out_dir, o.out_dir);
  const auto j = json::parse(io::read_file((fs::path(o.out_dir) / "metrics.json").string()));
  EXPECT_EQ(j["zoom_out"], 2.5);
}

// IDX bytes: 2 zero bytes, type 0x08, the dimension count, big-endian sizes, the values.
std::string idx(const std::vector<uint32_t>& shape, const std::vector<uint8_t>& values) {
  std::string s = {0, 0, 8, static_cast<char>(shape.size())};
  for (const uint32_t d : shape) {
    for (int shift = 24; shift >= 0; shift -= 8) s.push_back(static_cast<char>((d >> shift) & 255));
  }
  s.append(values.begin(), values.end());
  return s;
}

TEST_F(ZeroShot, FashionMnistClassesWithoutImagesHaveNoAccuracy) {
  // 4 test images of 28 x 28 random pixels, labels t-shirt, t-shirt, dress, ankle boot
  const std::vector<uint8_t> labels = {0, 0, 3, 9};
  std::mt19937 rng(7);
  std::vector<uint8_t> pixels(4 * 28 * 28);
  for (auto& p : pixels) p = static_cast<uint8_t>(rng() & 255);
  const auto root = dir_.path() / "fashion";
  fs::create_directories(root);
  io::write_file_atomic((root / "t10k-images-idx3-ubyte").string(), idx({4, 28, 28}, pixels));
  io::write_file_atomic((root / "t10k-labels-idx1-ubyte").string(), idx({4}, labels));
  ZeroShotOptions o;
  o.checkpoint = checkpoint_;
  o.data_root = root.string();
  o.out_dir = (dir_.path() / "out").string();
  const auto s = run_zero_shot(o);
  EXPECT_EQ(s.images, 4);

  std::vector<cv::Mat> rgb;
  for (int i = 0; i < 4; ++i) {
    const cv::Mat gray(28, 28, CV_8UC1, pixels.data() + i * 28 * 28);
    cv::Mat color;
    cv::cvtColor(gray, color, cv::COLOR_GRAY2RGB);
    rgb.push_back(color);
  }
  const auto& classes = data::fashion_class_names();
  const auto e = classify(rgb, {0, 0, 3, 9}, classes, 0);
  EXPECT_NEAR(s.metrics.at("top1"), e.top1, 1e-9);
  EXPECT_NEAR(s.metrics.at("top5"), e.top5, 1e-9);
  const auto j = json::parse(io::read_file((fs::path(o.out_dir) / "metrics.json").string()));
  ASSERT_EQ(j["per_class_top1"].size(), 10u);
  EXPECT_EQ(j["per_class_top1"]["t-shirt"].get<double>(), 50.0 * e.per_class_hit[0]);
  EXPECT_TRUE(j["per_class_top1"]["trousers"].is_null());  // no image: no accuracy, not 0%
  EXPECT_EQ(j["zero_shot"], "fashion_mnist");
  EXPECT_NE(s.table.find(fmt::format("  {:<16} {:>7} (no images)\n", "trousers", "-")),
            std::string::npos)
      << s.table;
  EXPECT_NE(s.table.find(fmt::format("  {:<16} {:6.2f}%\n", "dress", 100.0 * e.per_class_hit[3])),
            std::string::npos)
      << s.table;

  // a split without images
  io::write_file_atomic((root / "t10k-images-idx3-ubyte").string(), idx({0, 28, 28}, {}));
  io::write_file_atomic((root / "t10k-labels-idx1-ubyte").string(), idx({0}, {}));
  const std::string error = error_of([&] { run_zero_shot(o); });
  EXPECT_NE(error.find("split test of " + o.data_root + " has no images"), std::string::npos)
      << error;
  // no files at all: the missing one is named
  o.data_root = (dir_.path() / "nowhere").string();
  const std::string missing = error_of([&] { run_zero_shot(o); });
  EXPECT_NE(missing.find(o.data_root + "/t10k-images-idx3-ubyte"), std::string::npos) << missing;
}

TEST_F(ZeroShot, BadOptionsAreRefused) {
  ZeroShotOptions o;
  o.checkpoint = checkpoint_;
  o.out_dir = (dir_.path() / "out").string();
  o.dataset = "cifar10";
  try {
    run_zero_shot(o);
    FAIL() << "an unknown data set was read";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("unknown data set 'cifar10' (expected fashion_mnist or "
                                         "image_folder)"),
              std::string::npos)
        << e.what();
  }
  o.dataset = "image_folder";
  EXPECT_THROW(run_zero_shot(o), std::invalid_argument);  // needs --data-root
  o.data_root = image_folder({"bag", "coat"});
  for (const double zoom : {0.5, -1.0, 100.5, std::nan(""), HUGE_VAL}) {
    o.zoom_out = zoom;
    try {
      run_zero_shot(o);
      FAIL() << "zoom-out " << zoom << " was taken";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("eval: zoom_out must be from 1 to 100"),
                std::string::npos)
          << e.what();
    }
  }
  o.zoom_out = 1;  // the bound itself: no canvas larger than the image
  EXPECT_EQ(run_zero_shot(o).images, 2);
  // a checkpoint of another task
  o.checkpoint = xmodal::testing::untrained_checkpoint("vqa", (dir_.path() / "vqa").string(),
                                                       (shared_->path() / "scenes").string());
  EXPECT_THROW(run_zero_shot(o), std::invalid_argument);
  EXPECT_FALSE(fs::exists(fs::path(o.checkpoint) / "zero-shot-image_folder-test"));
}

}  // namespace
}  // namespace xmodal::eval
