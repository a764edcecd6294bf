#include "xmodal/data/dataset.h"

#include <filesystem>
#include <map>
#include <stdexcept>

#include "xmodal/core/logging.h"
#include "xmodal/data/karpathy.h"
#include "xmodal/data/labelled.h"
#include "xmodal/data/vqa.h"

namespace xmodal::data {

namespace {

namespace fs = std::filesystem;

// retrieval: one example per (image, caption) pair, in file order; Example::counts is the
// image's content (objects per category) where the split has COCO instances, for the "same
// content" recall (the scenes).
void load_retrieval(const config::Config& c, const std::string& split, BadInputPolicy& policy,
                    TaskData& data) {
  const std::string instances =
      (fs::path(c.data.root) / "annotations" / ("instances_" + split + ".json")).string();
  std::error_code ec;
  CocoSet coco;
  const bool has_instances = fs::exists(instances, ec);
  if (has_instances)
    coco = read_coco(c.data.root, split, policy, c.data.dataset == config::Dataset::coco);
  std::vector<KarpathyImage> images;
  if (c.data.dataset == config::Dataset::coco) {
    if (!has_instances) coco = read_coco_captions(c.data.root, split, policy);
    for (auto& image : coco.images) images.push_back({image.id, image.path, image.captions});
  } else {
    const std::string file =
        c.data.dataset == config::Dataset::scenes ? "dataset_scenes.json" : c.data.split_file;
    const std::string path = (fs::path(c.data.root) / file).string();
    if (c.data.dataset == config::Dataset::scenes && !fs::exists(path, ec)) {
      throw std::runtime_error(path +
                               " is missing: this scenes set was made before retrieval captions; "
                               "rebuild it with `xmodal data scenes --out " +
                               c.data.root + " --overwrite`");
    }
    images = read_karpathy(c.data.root, path, split, policy);
  }
  for (const auto& category : coco.categories) data.class_names.push_back(category.name);
  for (const auto& image : images) {
    const auto content = coco.image_index.find(image.id);
    for (const auto& caption : image.captions) {
      Example e;
      e.image_path = image.path;
      e.texts = {caption};
      e.id = image.id;
      if (content != coco.image_index.end()) e.counts = coco.images[content->second].counts;
      data.examples.push_back(std::move(e));
    }
  }
}

}  // namespace

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
    std::map<int64_t, const CocoImage*> instances;
    CocoSet coco;
    if ((c.train.aux.counting > 0 || c.train.aux.dense > 0) && set.has_annotations) {
      coco = read_coco(c.data.root, split, policy, /*with_captions=*/false);
      for (const auto& category : coco.categories) data.aux_class_names.push_back(category.name);
      for (const auto& image : coco.images) instances[image.id] = &image;
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
        const auto it = instances.find(q.image_id);
        if (it == instances.end()) {
          throw std::runtime_error("train.aux: image " + std::to_string(q.image_id) +
                                   " of question " + std::to_string(q.question_id) + " is not in " +
                                   c.data.root + "/annotations/instances_" + split + ".json");
        }
        e.counts = it->second->counts;
        if (c.train.aux.dense > 0) e.objects = it->second->objects;
      }
      data.examples.push_back(std::move(e));
    }
  } else if (c.task == config::Task::retrieval) {
    load_retrieval(c, split, policy, data);
  } else if (c.task == config::Task::classify) {
    LabelledSet set;
    if (c.data.dataset == config::Dataset::fashion_mnist) {
      set = read_fashion_mnist(c.data.root, split);
    } else if (c.data.dataset == config::Dataset::image_folder) {
      std::vector<std::string> classes;
      if (split != c.data.train_split) {
        classes = read_image_folder(c.data.root, c.data.train_split).class_names;
      }
      set = read_image_folder(c.data.root, split, classes);
    } else {
      throw std::invalid_argument("task classify needs data.dataset fashion_mnist or image_folder");
    }
    data.class_names = set.class_names;
    for (auto& image : set.images) {
      Example e;
      e.image_path = image.path;
      e.id = image.id;
      e.label = image.label;
      e.pixels = image.pixels;
      data.examples.push_back(std::move(e));
    }
  } else {
    if (c.data.dataset == config::Dataset::vqa) {
      throw std::invalid_argument("task counting needs data.dataset coco or scenes, not vqa");
    }
    const CocoSet set = read_coco(c.data.root, split, policy);
    for (const auto& category : set.categories) data.class_names.push_back(category.name);
    if (c.train.aux.dense > 0) data.aux_class_names = data.class_names;
    for (const auto& image : set.images) {
      Example e;
      e.image_path = image.path;
      e.texts = image.captions;
      if (e.texts.empty()) e.texts = {"how many of each kind of object are there?"};
      e.id = image.id;
      e.counts = image.counts;
      e.crowd = image.crowd;
      if (c.train.aux.dense > 0) e.objects = image.objects;
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
