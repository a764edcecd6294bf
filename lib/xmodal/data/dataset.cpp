#include "xmodal/data/dataset.h"

#include <map>
#include <stdexcept>

#include "xmodal/core/logging.h"
#include "xmodal/data/vqa.h"

namespace xmodal::data {

TaskData load_split(const config::Config& c, const std::string& split, const AnswerVocab* vocab) {
  TaskData data;
  data.task = c.task;
  data.split = split;
  BadInputPolicy policy;
  policy.skip = c.data.on_bad_sample == config::BadSample::skip;
  if (c.task == config::Task::vqa) {
    if (c.data.dataset == config::Dataset::coco) {
      throw std::invalid_argument("task vqa needs data.dataset vqa or scenes, not coco");
    }
    const VqaSet set = read_vqa(c.data.root, split, policy);
    AnswerVocab built;
    if (!vocab) {
      std::vector<std::vector<std::string>> answers;
      for (const auto& q : set.questions) answers.push_back(q.answers);
      built = AnswerVocab::build(answers, c.data.answer_min_count, c.data.answer_top_k);
      if (built.size() == 0) {
        throw std::runtime_error(vqa_annotations_file(c.data.root, split) +
                                 ": no answer occurs data.answer_min_count (" +
                                 std::to_string(c.data.answer_min_count) + ") times");
      }
      vocab = &built;
    }
    data.class_names = vocab->answers();
    data.has_targets = set.has_annotations;
    // Auxiliary counting targets: the instances of the same images.
    std::map<int64_t, std::vector<int>> image_counts;
    if (c.train.aux.counting > 0 && set.has_annotations) {
      const CocoSet coco = read_coco(c.data.root, split, policy, /*with_captions=*/false);
      for (const auto& category : coco.categories) data.aux_class_names.push_back(category.name);
      for (const auto& image : coco.images) image_counts[image.id] = image.counts;
    }
    for (const auto& q : set.questions) {
      Example e;
      e.image_path = q.image_path;
      e.texts = {q.question};
      e.id = q.question_id;
      e.answers = q.answers;
      e.answer_type = q.answer_type;
      e.answer_targets = vocab->targets(q.answers);
      if (!data.aux_class_names.empty()) {
        const auto it = image_counts.find(q.image_id);
        if (it == image_counts.end()) {
          throw std::runtime_error("train.aux.counting: image " + std::to_string(q.image_id) +
                                   " of question " + std::to_string(q.question_id) +
                                   " has no instances in " + c.data.root + "/annotations");
        }
        e.counts = it->second;
      }
      data.examples.push_back(std::move(e));
    }
  } else {
    if (c.data.dataset == config::Dataset::vqa) {
      throw std::invalid_argument("task counting needs data.dataset coco or scenes, not vqa");
    }
    const CocoSet set = read_coco(c.data.root, split, policy);
    for (const auto& category : set.categories) data.class_names.push_back(category.name);
    for (const auto& image : set.images) {
      Example e;
      e.image_path = image.path;
      e.texts = image.captions;
      if (e.texts.empty()) e.texts = {"how many of each kind of object are there?"};
      e.id = image.id;
      e.counts = image.counts;
      e.crowd = image.crowd;
      data.examples.push_back(std::move(e));
    }
  }
  data.skipped = policy.skipped;
  if (policy.skipped > 0) {
    log::warn("[data] {} split: skipped {} bad record(s) (on_bad_sample: skip); first: {}", split,
              policy.skipped, policy.first_problem);
  }
  return data;
}

}  // namespace xmodal::data
