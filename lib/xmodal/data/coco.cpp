#include "xmodal/data/coco.h"

#include <algorithm>
#include <filesystem>
#include <stdexcept>

#include "xmodal/io/json.h"

namespace xmodal::data {

void BadInputPolicy::bad(const std::string& message) {
  if (!skip) throw std::runtime_error(message);
  if (skipped == 0) first_problem = message;
  ++skipped;
}

std::string coco_image_dir(const std::string& root, const std::string& split) {
  namespace fs = std::filesystem;
  const fs::path nested = fs::path(root) / "images" / split;
  std::error_code ec;
  if (fs::is_directory(nested, ec)) return nested.string();
  return (fs::path(root) / split).string();
}

namespace {

// The captions of `file` (captions_SPLIT.json) added to the images of `set` they name.
void add_captions(const io::JsonFile& file, CocoSet& set, BadInputPolicy& policy) {
  int64_t i = 0;
  for (auto a : file.array(file.root(), "annotations", {})) {
    const io::Where where{"annotations", i++};
    const int64_t image_id = file.integer(a, "image_id", where);
    const auto image = set.image_index.find(image_id);
    if (image == set.image_index.end()) {
      policy.bad(file.path() + ": " + where.str() + ": unknown image_id " +
                 std::to_string(image_id));
      continue;
    }
    set.images[image->second].captions.push_back(file.string(a, "caption", where));
  }
}

}  // namespace

CocoSet read_coco_captions(const std::string& root, const std::string& split,
                           BadInputPolicy& policy) {
  namespace fs = std::filesystem;
  const auto file = io::JsonFile::load(
      (fs::path(root) / "annotations" / ("captions_" + split + ".json")).string());
  const std::string image_dir = coco_image_dir(root, split);
  CocoSet set;
  int64_t i = 0;
  for (auto im : file.array(file.root(), "images", {})) {
    const io::Where where{"images", i++};
    CocoImage image;
    image.id = file.integer(im, "id", where);
    image.file_name = file.string(im, "file_name", where);
    image.path = (fs::path(image_dir) / image.file_name).string();
    if (!set.image_index.emplace(image.id, set.images.size()).second) {
      file.fail(where, "image id " + std::to_string(image.id) + " appears twice");
    }
    set.images.push_back(std::move(image));
  }
  add_captions(file, set, policy);
  return set;
}

CocoSet read_coco(const std::string& root, const std::string& split, BadInputPolicy& policy,
                  bool with_captions) {
  namespace fs = std::filesystem;
  const std::string instances_path =
      (fs::path(root) / "annotations" / ("instances_" + split + ".json")).string();
  const std::string image_dir = coco_image_dir(root, split);
  CocoSet set;
  const auto file = io::JsonFile::load(instances_path);
  const auto doc = file.root();

  size_t i = 0;
  std::vector<CocoCategory> categories;
  for (auto c : file.array(doc, "categories", {})) {
    const io::Where where{"categories", static_cast<int64_t>(i++)};
    CocoCategory cat{file.integer(c, "id", where), file.string(c, "name", where), ""};
    if (file.has(c, "supercategory")) cat.supercategory = file.string(c, "supercategory", where);
    categories.push_back(std::move(cat));
  }
  std::sort(categories.begin(), categories.end(),
            [](const CocoCategory& a, const CocoCategory& b) { return a.id < b.id; });
  for (size_t k = 0; k < categories.size(); ++k) {
    if (!set.category_index.emplace(categories[k].id, static_cast<int>(k)).second) {
      file.fail({}, "category id " + std::to_string(categories[k].id) + " appears twice");
    }
  }
  set.categories = std::move(categories);
  const size_t num_categories = set.categories.size();

  i = 0;
  for (auto im : file.array(doc, "images", {})) {
    const io::Where where{"images", static_cast<int64_t>(i++)};
    CocoImage image;
    image.id = file.integer(im, "id", where);
    image.file_name = file.string(im, "file_name", where);
    image.path = (fs::path(image_dir) / image.file_name).string();
    if (file.has(im, "width")) image.width = static_cast<int>(file.integer(im, "width", where));
    if (file.has(im, "height")) image.height = static_cast<int>(file.integer(im, "height", where));
    image.counts.assign(num_categories, 0);
    image.crowd.assign(num_categories, 0);
    if (!set.image_index.emplace(image.id, set.images.size()).second) {
      file.fail(where, "image id " + std::to_string(image.id) + " appears twice");
    }
    set.images.push_back(std::move(image));
  }

  i = 0;
  for (auto a : file.array(doc, "annotations", {})) {
    const io::Where where{"annotations", static_cast<int64_t>(i++)};
    const int64_t image_id = file.integer(a, "image_id", where);
    const int64_t category_id = file.integer(a, "category_id", where);
    const auto image = set.image_index.find(image_id);
    if (image == set.image_index.end()) {
      policy.bad(instances_path + ": " + where.str() + ": unknown image_id " +
                 std::to_string(image_id));
      continue;
    }
    const auto category = set.category_index.find(category_id);
    if (category == set.category_index.end()) {
      policy.bad(instances_path + ": " + where.str() + ": unknown category_id " +
                 std::to_string(category_id));
      continue;
    }
    const bool crowd = file.has(a, "iscrowd") && file.integer(a, "iscrowd", where) != 0;
    auto& img = set.images[image->second];
    if (crowd) {
      img.crowd[category->second] = 1;
    } else {
      ++img.counts[category->second];
      if (file.has(a, "bbox")) {
        const auto box = file.array(a, "bbox", where);
        std::vector<double> v;
        for (auto x : box) {
          double d = 0;
          if (x.get(d) != simdjson::SUCCESS) {
            int64_t n = 0;
            if (x.get(n) != simdjson::SUCCESS) file.fail(where, "bbox holds a non-number");
            d = static_cast<double>(n);
          }
          v.push_back(d);
        }
        if (v.size() != 4 || !(v[2] >= 0) || !(v[3] >= 0)) {
          file.fail(where, "bbox must be [x, y, width, height] with width, height >= 0");
        }
        img.objects.push_back({category->second, static_cast<float>(v[0] + v[2] / 2),
                               static_cast<float>(v[1] + v[3] / 2), static_cast<float>(v[2]),
                               static_cast<float>(v[3])});
      }
    }
  }

  const std::string captions_path =
      (fs::path(root) / "annotations" / ("captions_" + split + ".json")).string();
  std::error_code ec;
  if (with_captions && fs::exists(captions_path, ec)) {
    add_captions(io::JsonFile::load(captions_path), set, policy);
  }
  return set;
}

}  // namespace xmodal::data
