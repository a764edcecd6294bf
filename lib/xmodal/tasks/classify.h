// Task classify's annotation of an image (tasks/classify.cpp reads, collates and scores it).
#pragma once

#include <cstdint>
#include <string>

#include "xmodal/data/dataset.h"

namespace xmodal::tasks {

struct ClassifyAnnotation : data::Annotation {
  int64_t label = -1;  ///< class index
};

/// classify's batch target (data::Batch::targets): [B] int64 class indices.
inline const std::string kClassifyLabels = "labels";

}  // namespace xmodal::tasks
