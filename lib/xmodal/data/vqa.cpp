#include "xmodal/data/vqa.h"

#include <cstdio>
#include <filesystem>
#include <map>
#include <stdexcept>

#include "xmodal/io/json.h"

namespace xmodal::data {

std::string vqa_questions_file(const std::string& root, const std::string& split) {
  return (std::filesystem::path(root) / ("v2_OpenEnded_mscoco_" + split + "_questions.json"))
      .string();
}

std::string vqa_annotations_file(const std::string& root, const std::string& split) {
  return (std::filesystem::path(root) / ("v2_mscoco_" + split + "_annotations.json")).string();
}

VqaSet read_vqa(const std::string& root, const std::string& split, BadInputPolicy& policy) {
  namespace fs = std::filesystem;
  std::error_code ec;
  // image id -> path: the split's COCO file names when there is an instances file.
  std::map<int64_t, std::string> image_paths;
  const fs::path instances = fs::path(root) / "annotations" / ("instances_" + split + ".json");
  if (fs::exists(instances, ec)) {
    BadInputPolicy lenient;
    lenient.skip = true;
    const CocoSet coco = read_coco(root, split, lenient, /*with_captions=*/false);  // names only
    for (const auto& image : coco.images) image_paths[image.id] = image.path;
  }
  const std::string image_dir = coco_image_dir(root, split);
  auto image_path = [&](int64_t id) {
    const auto it = image_paths.find(id);
    if (it != image_paths.end()) return it->second;
    char name[64];
    std::snprintf(name, sizeof(name), "_%012lld.jpg", static_cast<long long>(id));
    return (fs::path(image_dir) / ("COCO_" + split + name)).string();
  };

  VqaSet set;
  const std::string questions_path = vqa_questions_file(root, split);
  const auto qfile = io::JsonFile::load(questions_path);
  std::map<int64_t, size_t> by_id;
  size_t i = 0;
  for (auto q : qfile.array(qfile.root(), "questions", {})) {
    const io::Where where{"questions", static_cast<int64_t>(i++)};
    VqaQuestion question;
    question.question_id = qfile.integer(q, "question_id", where);
    question.image_id = qfile.integer(q, "image_id", where);
    question.question = qfile.string(q, "question", where);
    question.image_path = image_path(question.image_id);
    if (!by_id.emplace(question.question_id, set.questions.size()).second) {
      qfile.fail(where, "question_id " + std::to_string(question.question_id) + " appears twice");
    }
    set.questions.push_back(std::move(question));
  }

  const std::string annotations_path = vqa_annotations_file(root, split);
  if (!fs::exists(annotations_path, ec)) return set;  // a test split: questions only
  set.has_annotations = true;
  const auto afile = io::JsonFile::load(annotations_path);
  std::vector<bool> annotated(set.questions.size(), false);
  i = 0;
  for (auto a : afile.array(afile.root(), "annotations", {})) {
    const io::Where where{"annotations", static_cast<int64_t>(i++)};
    const int64_t question_id = afile.integer(a, "question_id", where);
    const auto it = by_id.find(question_id);
    if (it == by_id.end()) {
      policy.bad(annotations_path + ": " + where.str() + ": unknown question_id " +
                 std::to_string(question_id));
      continue;
    }
    VqaQuestion& q = set.questions[it->second];
    size_t k = 0;
    for (auto answer : afile.array(a, "answers", where)) {
      q.answers.push_back(
          afile.string(answer, "answer", io::Where(where, "answers", static_cast<int64_t>(k++))));
    }
    if (afile.has(a, "answer_type")) q.answer_type = afile.string(a, "answer_type", where);
    if (afile.has(a, "question_type")) q.question_type = afile.string(a, "question_type", where);
    if (afile.has(a, "multiple_choice_answer")) {
      q.multiple_choice_answer = afile.string(a, "multiple_choice_answer", where);
    }
    annotated[it->second] = true;
  }
  // Drop questions that have no annotation in an annotated split (they cannot be scored).
  std::vector<VqaQuestion> kept;
  for (size_t k = 0; k < set.questions.size(); ++k) {
    if (annotated[k]) {
      kept.push_back(std::move(set.questions[k]));
    } else {
      policy.bad(questions_path + ": question_id " + std::to_string(set.questions[k].question_id) +
                 " has no annotation in " + annotations_path);
    }
  }
  set.questions = std::move(kept);
  return set;
}

}  // namespace xmodal::data
