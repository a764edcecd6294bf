// COCO instances + captions, read as published (docs/design.md section 4):
//   ROOT/annotations/instances_SPLIT.json, ROOT/annotations/captions_SPLIT.json,
//   images in ROOT/images/SPLIT/ (or ROOT/SPLIT/, the layout of the official zips).
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xmodal::data {

/// What a reader does with a record it cannot use, and how many it skipped.
struct BadInputPolicy {
  bool skip = false;          ///< false: throw (naming file and record); true: count and go on
  int64_t skipped = 0;        ///< records skipped so far
  std::string first_problem;  ///< the first skipped record's problem, for the one-time report

  /// Throws std::runtime_error(message) unless skipping, else counts it.
  void bad(const std::string& message);
};

struct CocoCategory {
  int64_t id = 0;  ///< COCO's id (1..90, not contiguous)
  std::string name;
  std::string supercategory;
};

/// One object instance: its category and bounding box, in the image's pixels (the dense
/// auxiliary loss uses the centre; the scenes' ceiling, eval/ceiling.h, the box).
struct CocoObject {
  int category = 0;      ///< contiguous index
  float cx = 0, cy = 0;  ///< centre of the box
  float w = 0, h = 0;    ///< box size
};

struct CocoImage {
  int64_t id = 0;
  std::string file_name;
  std::string path;  ///< file_name resolved against the image folder
  int width = 0, height = 0;
  std::vector<int> counts;     ///< objects per category (contiguous index), crowd regions excluded
  std::vector<uint8_t> crowd;  ///< 1 where the category also has an iscrowd region (count unknown)
  std::vector<CocoObject> objects;  ///< non-crowd instances that have a bbox
  std::vector<std::string> captions;
};

struct CocoSet {
  std::vector<CocoCategory> categories;   ///< contiguous index -> category, by COCO id
  std::map<int64_t, int> category_index;  ///< COCO id -> contiguous index
  std::vector<CocoImage> images;          ///< in file order
  std::map<int64_t, size_t> image_index;  ///< image id -> position in images
};

/// Folder holding a split's images: ROOT/images/SPLIT if it exists, else ROOT/SPLIT.
std::string coco_image_dir(const std::string& root, const std::string& split);

/// Reads instances (required) and, with `with_captions`, captions (optional: missing file = no
/// captions) of a split.
/// Images without annotations count zero objects. Throws std::runtime_error naming the file
/// and the record for malformed JSON, missing fields, or (unless policy.skip) annotations of
/// unknown images or categories.
CocoSet read_coco(const std::string& root, const std::string& split, BadInputPolicy& policy,
                  bool with_captions = true);

/// Reads captions_SPLIT.json alone (its images and their captions; no instances, so no counts):
/// what task retrieval needs of COCO. Errors as read_coco.
CocoSet read_coco_captions(const std::string& root, const std::string& split,
                           BadInputPolicy& policy);

}  // namespace xmodal::data
