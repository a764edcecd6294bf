// `xmodal eval --zero-shot fashion_mnist|image_folder`: a retrieval checkpoint as an image
// classifier without training (CLIP): one text embedding per class from eval.prompts, each
// image assigned the class of the most similar text; top-1 / top-5 accuracy.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xmodal::eval {

struct ZeroShotOptions {
  std::string checkpoint;
  std::string dataset = "fashion_mnist";  ///< fashion_mnist | image_folder
  std::string data_root;  ///< "" = /usr/share/datasets/fashion-mnist for fashion_mnist
  std::string split = "test";
  /// Paste each image centred on a black canvas this many times its side before resizing
  /// (e.g. 96 / 28 = 3.43: Fashion-MNIST articles at the scale they have in the scenes); 0 = off.
  double zoom_out = 0;
  std::string out_dir;  ///< "" = CKPT/zero-shot-DATASET-SPLIT
  std::vector<std::string> overrides;
};

struct ZeroShotSummary {
  std::string out_dir;
  int64_t images = 0;
  std::map<std::string, double> metrics;  ///< top1, top5 (percent)
  std::string table;
  double seconds = 0;
};

ZeroShotSummary run_zero_shot(const ZeroShotOptions& options);

}  // namespace xmodal::eval
