// Labelled-image readers for task classify: the real Fashion-MNIST IDX files (Debian's
// dataset-fashion-mnist, installed by scripts/setup.sh) and an image-folder layout.
#include "xmodal/data/labelled.h"

#include <gtest/gtest.h>
#include <opencv2/imgcodecs.hpp>

#include "../support/temp_dir.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/scenes.h"
#include "xmodal/tasks/classify.h"
#include "xmodal/tasks/task.h"

namespace xmodal::data {
namespace {

using xmodal::testing::TempDir;
const std::string kFashion = "/usr/share/datasets/fashion-mnist";

TEST(Labelled, FashionMnistSplitsAreDisjointAndComplete) {
  const auto train = read_fashion_mnist(kFashion, "train");
  const auto val = read_fashion_mnist(kFashion, "val");
  const auto test = read_fashion_mnist(kFashion, "test");
  EXPECT_EQ(train.images.size(), 55000u);
  EXPECT_EQ(val.images.size(), 5000u);
  EXPECT_EQ(test.images.size(), 10000u);
  EXPECT_EQ(train.class_names, fashion_class_names());
  // val is the tail of the training file: its first record is record 55000 of that file.
  EXPECT_EQ(val.images[0].path, kFashion + "/train#55000");
  EXPECT_EQ(val.images[0].id, 0);
  EXPECT_EQ(train.images[0].pixels.size(), cv::Size(28, 28));
  // Fashion-MNIST's training labels are balanced: 6000 per class over the whole file.
  std::vector<int> per_class(10, 0);
  for (const auto* set : {&train, &val}) {
    for (const auto& image : set->images) ++per_class.at(image.label);
  }
  for (int n : per_class) EXPECT_EQ(n, 6000);
  // Records differ (the views do not all point at one image).
  EXPECT_GT(cv::norm(train.images[0].pixels, train.images[1].pixels), 0.0);
  EXPECT_THROW(read_fashion_mnist(kFashion, "holdout"), std::invalid_argument);
  try {
    read_fashion_mnist("/nonexistent", "train");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("/nonexistent/train-images-idx3-ubyte"), std::string::npos)
        << e.what();
  }
}

TEST(Labelled, ImageFolderClassesComeFromTheTrainingSplit) {
  TempDir dir;
  const cv::Mat image(8, 8, CV_8UC3, cv::Scalar(10, 20, 30));
  for (const char* file : {"train/cat/a.png", "train/cat/b.jpg", "train/dog/c.png", "val/dog/d.png",
                           "val/cat/notes.txt", "odd/bird/e.png"}) {
    const auto path = dir.path() / file;
    std::filesystem::create_directories(path.parent_path());
    if (path.extension() == ".txt") {
      std::ofstream(path) << "not an image";
    } else {
      ASSERT_TRUE(cv::imwrite(path.string(), image));
    }
  }
  const auto train = read_image_folder(dir.path().string(), "train");
  EXPECT_EQ(train.class_names, (std::vector<std::string>{"cat", "dog"}));
  ASSERT_EQ(train.images.size(), 3u);
  EXPECT_EQ(train.images[2].label, 1);
  const auto val = read_image_folder(dir.path().string(), "val", train.class_names);
  ASSERT_EQ(val.images.size(), 1u);  // the .txt is not an image
  EXPECT_EQ(val.images[0].label, 1);
  try {
    read_image_folder(dir.path().string(), "odd", train.class_names);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("odd/bird: class not in the training split"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(read_image_folder(dir.path().string(), "missing"), std::runtime_error);

  // Through load_split: task classify, val classes from the training split.
  config::Config c;
  c.task = config::Task::classify;
  c.data.dataset = config::Dataset::image_folder;
  c.data.root = dir.path().string();
  const auto data = tasks::load_split(c, "val");
  EXPECT_EQ(data.class_names, train.class_names);
  EXPECT_EQ(annotation_of<tasks::ClassifyAnnotation>(data.examples.at(0)).label, 1);
}

}  // namespace
}  // namespace xmodal::data
