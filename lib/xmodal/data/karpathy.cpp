#include "xmodal/data/karpathy.h"

#include <filesystem>

#include "xmodal/io/json.h"

namespace xmodal::data {
namespace fs = std::filesystem;

namespace {

std::string resolve_image(const fs::path& root, const std::string& filepath,
                          const std::string& filename) {
  std::vector<fs::path> candidates;
  if (!filepath.empty()) {
    candidates = {root / filepath / filename, root / "images" / filepath / filename};
  } else {
    candidates = {root / filename, root / "images" / filename,
                  root / "flickr30k-images" / filename};
  }
  std::error_code ec;
  for (const auto& c : candidates) {
    if (fs::exists(c, ec)) return c.string();
  }
  return candidates.front().string();
}

}  // namespace

std::vector<KarpathyImage> read_karpathy(const std::string& root, const std::string& path,
                                         const std::string& split, BadInputPolicy& policy) {
  const auto file = io::JsonFile::load(path);
  std::vector<KarpathyImage> out;
  int64_t i = 0;
  for (auto im : file.array(file.root(), "images", {})) {
    const io::Where where{"images", i++};
    const std::string image_split = file.string(im, "split", where);
    if (image_split != split && !(split == "train" && image_split == "restval")) continue;
    KarpathyImage image;
    image.id = file.has(im, "cocoid") ? file.integer(im, "cocoid", where)
                                      : file.integer(im, "imgid", where);
    const std::string filepath = file.has(im, "filepath") ? file.string(im, "filepath", where) : "";
    image.path = resolve_image(root, filepath, file.string(im, "filename", where));
    int64_t k = 0;
    for (auto sentence : file.array(im, "sentences", where)) {
      image.captions.push_back(file.string(sentence, "raw", io::Where(where, "sentences", k++)));
    }
    if (image.captions.empty()) {
      policy.bad(path + ": " + where.str() + ": image " + std::to_string(image.id) +
                 " has no sentences");
      continue;
    }
    out.push_back(std::move(image));
  }
  return out;
}

}  // namespace xmodal::data
