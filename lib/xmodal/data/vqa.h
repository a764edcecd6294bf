// VQA v2 questions + annotations, read as published (docs/design.md section 4):
//   ROOT/v2_OpenEnded_mscoco_SPLIT_questions.json   (required)
//   ROOT/v2_mscoco_SPLIT_annotations.json           (optional: test splits have none)
// Image paths: from ROOT/annotations/instances_SPLIT.json when present (the scenes set writes
// one), else COCO's naming: ROOT/images/SPLIT/COCO_SPLIT_<12-digit id>.jpg (or ROOT/SPLIT/...).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "xmodal/data/coco.h"

namespace xmodal::data {

struct VqaQuestion {
  int64_t question_id = 0;
  int64_t image_id = 0;
  std::string image_path;
  std::string question;
  std::vector<std::string>
      answers;              ///< the 10 human answers, as written (empty without annotations)
  std::string answer_type;  ///< "yes/no", "number", "other"
  std::string question_type;
  std::string multiple_choice_answer;
};

struct VqaSet {
  std::vector<VqaQuestion> questions;  ///< in the questions file's order
  bool has_annotations = false;
};

/// Reads a split. Throws std::runtime_error naming the file and record for malformed input;
/// annotations of unknown questions are bad records (policy), questions without an annotation
/// in an annotated split too.
VqaSet read_vqa(const std::string& root, const std::string& split, BadInputPolicy& policy);

std::string vqa_questions_file(const std::string& root, const std::string& split);
std::string vqa_annotations_file(const std::string& root, const std::string& split);

}  // namespace xmodal::data
