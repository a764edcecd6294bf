// Labelled-image data sets for task classify (encoder pretraining):
//   fashion_mnist  the four IDX files of Fashion-MNIST (plain or .gz) in ROOT; splits: train =
//                  the first 11/12 of the training images (55000), val = the last 1/12 (5000),
//                  test = t10k
//   image_folder   ROOT/SPLIT/CLASS/*.{png,jpg,jpeg,bmp}; the classes are the sorted folder
//                  names of the training split
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::data {

struct LabelledImage {
  std::string path;  ///< the file (image_folder) or "ROOT/SPLIT#N" (IDX record N)
  cv::Mat pixels;    ///< in-memory 8-bit image (IDX records); empty when read from `path`
  int64_t id = 0;    ///< position in the split
  int64_t label = 0;
};

struct LabelledSet {
  std::vector<std::string> class_names;
  std::vector<LabelledImage> images;
};

/// Reads a split of Fashion-MNIST from its IDX files (classes: fashion_class_names()). Throws
/// std::runtime_error naming the file for missing or malformed files, std::invalid_argument for an
/// unknown split name.
LabelledSet read_fashion_mnist(const std::string& root, const std::string& split);

/// Lists ROOT/SPLIT/CLASS/* images. `classes` empty: the split's sorted folder names become the
/// classes; otherwise every folder must be one of `classes` (the training split's). Throws
/// std::runtime_error naming the folder when it is missing, empty or has an unknown class.
LabelledSet read_image_folder(const std::string& root, const std::string& split,
                              const std::vector<std::string>& classes = {});

}  // namespace xmodal::data
