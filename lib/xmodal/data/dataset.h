// A split of a task's data, ready for the loader: one Example per training unit.
//   vqa:      one example per question (scenes or VQA v2 files), soft targets over the answer
//             vocabulary built from the training split
//   counting: one example per image (scenes or COCO files), all its captions (the loader draws
//             one per epoch), per-category counts
//   classify: one example per labelled image (Fashion-MNIST IDX files or an image folder)
#pragma once

#include <opencv2/core.hpp>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/data/coco.h"
#include "xmodal/data/vqa_answers.h"

namespace xmodal::data {

struct Example {
  std::string image_path;
  std::vector<std::string> texts;                     ///< vqa: the question; counting: the captions
  int64_t id = 0;                                     ///< question_id (vqa) or image_id (counting)
  std::vector<std::pair<int, float>> answer_targets;  ///< vqa: (answer class, soft score)
  std::vector<std::string> answers;                   ///< vqa: the 10 human answers
  std::string answer_type;                            ///< vqa
  std::vector<int> counts;     ///< counting (and vqa with train.aux.counting): per category
  std::vector<uint8_t> crowd;  ///< counting: count unknown (crowd region)
  /// with train.aux.dense: the image's instances (category in aux_class_names, box centre)
  std::vector<CocoObject> objects;
  int64_t label = -1;  ///< classify: class index
  cv::Mat pixels;      ///< an in-memory 8-bit image (IDX records) used instead of image_path
};

struct TaskData {
  config::Task task = config::Task::vqa;
  std::string split;
  std::vector<Example> examples;
  std::vector<std::string> class_names;  ///< answers (vqa), categories (counting), classes
  /// The COCO categories of the auxiliary losses (train.aux.counting, train.aux.dense): vqa's
  /// Example::counts and every task's Example::objects refer to them (empty without them).
  std::vector<std::string> aux_class_names;
  bool has_targets = true;  ///< false for a test split without annotations
  int64_t skipped = 0;      ///< records the readers skipped (on_bad_sample: skip)

  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

/// Reads `split` of the configured data set for the configured task. For vqa, `vocab` is the
/// answer vocabulary (built from the training split when null: pass the result's class_names
/// on to the other splits). Throws std::invalid_argument for a task the data set cannot serve,
/// std::runtime_error for unreadable or malformed files.
TaskData load_split(const config::Config& config, const std::string& split,
                    const AnswerVocab* vocab = nullptr);

}  // namespace xmodal::data
