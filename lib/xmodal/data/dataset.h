// A split of a task's data, ready for the loader: one Example per training unit (a question, an
// image, an image-caption pair: the task decides). The task that reads a split (tasks/*.cpp,
// Task::read_split, through the file readers of this folder) annotates each example with its own
// targets and gives the split the collate that makes a batch's target tensors of them: this layer
// carries both and never looks inside.
#pragma once

#include <torch/types.h>
#include <opencv2/core.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/data/coco.h"

namespace xmodal::data {

/// A task's annotation of one example, what its targets are made of (tasks/ define them: vqa's
/// human answers, counting's counts, ...).
struct Annotation {
  virtual ~Annotation() = default;
};

struct Example {
  std::string image_path;
  /// The texts the loader draws one of per epoch (a question, an image's captions), or none.
  std::vector<std::string> texts;
  int64_t id = 0;  ///< the task's id of the example (question_id, image_id, ...)
  /// The task's annotation (tasks/), or null.
  std::shared_ptr<const Annotation> annotation;
  /// With train.aux.counting: the image's objects per category of TaskData::aux_class_names
  /// (the auxiliary counting head's targets), else empty.
  std::vector<int> aux_counts;
  /// With train.aux.dense or locate: the image's instances (category in aux_class_names, box
  /// centre).
  std::vector<CocoObject> objects;
  cv::Mat pixels;  ///< an in-memory 8-bit image (IDX records) used instead of image_path
};

/// The annotation of `e` as task type A; throws std::logic_error when it has none of that type.
template <typename A>
const A& annotation_of(const Example& e) {
  const auto* a = dynamic_cast<const A*>(e.annotation.get());
  if (a == nullptr) {
    throw std::logic_error("example " + std::to_string(e.id) +
                           " has no annotation of the task that reads it");
  }
  return *a;
}

/// A batch's targets by the names their task gives them.
using Targets = std::map<std::string, torch::Tensor>;

/// The target tensors of a batch's examples (rows in batch order).
using Collate = std::function<Targets(const std::vector<const Example*>& rows)>;

struct TaskData {
  config::Task task = config::Task::vqa;
  std::string split;
  std::vector<Example> examples;
  std::vector<std::string> class_names;  ///< answers (vqa), categories (counting), classes
  /// The COCO categories of the auxiliary losses (train.aux.*): every
  /// Example's aux_counts and objects refer to them (empty without them).
  std::vector<std::string> aux_class_names;
  bool has_targets = true;  ///< false for a test split without annotations
  int64_t skipped = 0;      ///< records the readers skipped (on_bad_sample: skip)
  /// The task's targets of a batch (set by the task that read the split); unset: batches carry
  /// no targets (retrieval: the pairs are the targets; a set of images to embed).
  Collate collate;

  int64_t num_classes() const { return static_cast<int64_t>(class_names.size()); }
};

}  // namespace xmodal::data
