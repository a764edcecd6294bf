// Task counting's annotation of an image (tasks/counting.cpp reads, collates and scores it).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xmodal/data/dataset.h"

namespace xmodal::tasks {

struct CountingAnnotation : data::Annotation {
  std::vector<int> counts;     ///< per category
  std::vector<uint8_t> crowd;  ///< per category: count unknown (a crowd region)
};

/// counting's batch targets (data::Batch::targets): [B, C] int64 counts clamped to
/// model.head.max_count, and [B, C] bool: the count is unknown.
inline const std::string kCountingCounts = "counts";
inline const std::string kCountingCrowd = "crowd";

}  // namespace xmodal::tasks
