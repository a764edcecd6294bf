// The Karpathy split files that image-text retrieval papers use (dataset_coco.json,
// dataset_flickr30k.json, dataset_flickr8k.json; data/README.md), read as published:
//   {"images": [{"filepath": "val2014", "filename": "COCO_val2014_000000391895.jpg",
//                "split": "test", "cocoid": 391895, "imgid": 0,
//                "sentences": [{"raw": "A man with a red helmet ...", ...}, ...]}, ...],
//    "dataset": "coco"}
// ("filepath" and "cocoid" are COCO's only). Also the layout of the scenes' dataset_scenes.json.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xmodal/data/coco.h"

namespace xmodal::data {

struct KarpathyImage {
  int64_t id = 0;  ///< cocoid when present, else imgid
  std::string path;
  std::vector<std::string> captions;
};

/// The images of `split` in `file` (a path), in file order. Split "train" also takes the
/// "restval" images (the 30k COCO val2014 images that retrieval papers train on). An image's
/// path is ROOT/filepath/filename or ROOT/images/filepath/filename (ROOT/filename,
/// ROOT/images/filename or ROOT/flickr30k-images/filename without filepath): the first that
/// exists, else the first. Throws std::runtime_error naming the file and the record for
/// malformed JSON or missing fields; an image without sentences is a bad record (policy).
std::vector<KarpathyImage> read_karpathy(const std::string& root, const std::string& file,
                                         const std::string& split, BadInputPolicy& policy);

}  // namespace xmodal::data
