#include "xmodal/data/labelled.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "xmodal/data/scenes.h"
#include "xmodal/io/idx.h"

namespace xmodal::data {
namespace fs = std::filesystem;

namespace {

// ROOT/NAME.gz or ROOT/NAME, whichever exists (the .gz name in messages when neither does).
std::string idx_file(const std::string& root, const std::string& name) {
  std::error_code ec;
  const fs::path plain = fs::path(root) / name;
  if (fs::exists(plain, ec)) return plain.string();
  return (fs::path(root) / (name + ".gz")).string();
}

bool image_extension(const fs::path& p) {
  std::string ext = p.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".bmp";
}

}  // namespace

LabelledSet read_fashion_mnist(const std::string& root, const std::string& split) {
  if (split != "train" && split != "val" && split != "test") {
    throw std::invalid_argument("data.dataset fashion_mnist: unknown split '" + split +
                                "' (train = the first 11/12 of the training images, val = the "
                                "last 1/12, test = t10k)");
  }
  const std::string prefix = split == "test" ? "t10k" : "train";
  const std::string images_path = idx_file(root, prefix + "-images-idx3-ubyte");
  const std::string labels_path = idx_file(root, prefix + "-labels-idx1-ubyte");
  io::IdxArray images = io::read_idx(images_path);
  const io::IdxArray labels = io::read_idx(labels_path);
  if (images.shape.size() != 3) {
    throw std::runtime_error(images_path + ": expected [N, rows, cols] images, got " +
                             std::to_string(images.shape.size()) + " dimensions");
  }
  if (labels.shape.size() != 1 || labels.count() != images.count()) {
    throw std::runtime_error(labels_path + ": " + std::to_string(labels.count()) +
                             " labels for the " + std::to_string(images.count()) + " images of " +
                             images_path);
  }
  int64_t begin = 0, end = images.count();
  if (split != "test") {
    const int64_t val = end / 12;  // 5000 of Fashion-MNIST's 60000
    if (val == 0) {
      throw std::runtime_error(images_path + ": " + std::to_string(end) +
                               " images are too few to hold out a val split (1/12)");
    }
    if (split == "train") end -= val;
    if (split == "val") begin = end - val;
  }
  LabelledSet set;
  set.class_names = fashion_class_names();
  const int rows = static_cast<int>(images.shape[1]), cols = static_cast<int>(images.shape[2]);
  // One owning buffer; every record is a rows x cols view into it.
  const cv::Mat all =
      cv::Mat(static_cast<int>(images.count() * rows), cols, CV_8UC1, images.data.data()).clone();
  for (int64_t i = begin; i < end; ++i) {
    if (labels.data[i] >= set.class_names.size()) {
      throw std::runtime_error(labels_path + ": record " + std::to_string(i) + " has label " +
                               std::to_string(labels.data[i]) + " (expected 0..9)");
    }
    LabelledImage image;
    image.path = root + "/" + prefix + "#" + std::to_string(i);
    image.pixels = all.rowRange(static_cast<int>(i * rows), static_cast<int>((i + 1) * rows));
    image.id = i - begin;
    image.label = labels.data[i];
    set.images.push_back(std::move(image));
  }
  return set;
}

LabelledSet read_image_folder(const std::string& root, const std::string& split,
                              const std::vector<std::string>& classes) {
  const fs::path dir = fs::path(root) / split;
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    throw std::runtime_error(dir.string() + ": no such folder (image_folder expects " +
                             "ROOT/SPLIT/CLASS/*.png|jpg)");
  }
  // A class folder that cannot be entered (a symbolic link loop, a dangling link, no
  // permission) is an error naming it, not a raw filesystem_error.
  const auto list = [](const fs::path& folder) {
    std::error_code error;
    std::vector<fs::directory_entry> entries;
    for (fs::directory_iterator it(folder, error), end; !error && it != end; it.increment(error)) {
      entries.push_back(*it);
    }
    if (error) throw std::runtime_error("cannot list " + folder.string() + ": " + error.message());
    return entries;
  };
  std::vector<std::string> found;
  for (const auto& entry : list(dir)) {
    const bool folder = entry.is_directory(ec);
    if (ec && entry.is_symlink()) {
      throw std::runtime_error(entry.path().string() + ": a class folder link that cannot be " +
                               "followed (" + ec.message() + ")");
    }
    if (folder) found.push_back(entry.path().filename().string());
  }
  std::sort(found.begin(), found.end());
  LabelledSet set;
  set.class_names = classes.empty() ? found : classes;
  if (set.class_names.empty()) {
    throw std::runtime_error(dir.string() + ": no class folders (expected SPLIT/CLASS/*.png|jpg)");
  }
  for (const auto& name : found) {
    const auto it = std::find(set.class_names.begin(), set.class_names.end(), name);
    if (it == set.class_names.end()) {
      throw std::runtime_error((dir / name).string() +
                               ": class not in the training split's classes");
    }
    std::vector<fs::path> files;
    for (const auto& entry : list(dir / name)) {
      if (entry.is_regular_file(ec) && image_extension(entry.path())) files.push_back(entry.path());
    }
    std::sort(files.begin(), files.end());
    for (const auto& file : files) {
      LabelledImage image;
      image.path = file.string();
      image.label = it - set.class_names.begin();
      set.images.push_back(std::move(image));
    }
  }
  if (set.images.empty()) {
    throw std::runtime_error(dir.string() +
                             ": no .png/.jpg/.jpeg/.bmp images in its class folders");
  }
  for (size_t i = 0; i < set.images.size(); ++i) set.images[i].id = static_cast<int64_t>(i);
  return set;
}

}  // namespace xmodal::data
