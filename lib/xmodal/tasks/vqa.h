// Task vqa's annotation of a question (tasks/vqa.cpp reads, collates and scores it).
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "xmodal/data/dataset.h"

namespace xmodal::tasks {

struct VqaAnnotation : data::Annotation {
  std::vector<std::pair<int, float>> answer_targets;  ///< (answer class, soft score)
  std::vector<std::string> answers;                   ///< the 10 human answers
  std::string answer_type;
};

/// vqa's batch target (data::Batch::targets): [B, answers] float32 soft scores.
inline const std::string kVqaScores = "scores";

}  // namespace xmodal::tasks
