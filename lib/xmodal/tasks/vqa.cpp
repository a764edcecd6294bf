// Task vqa: an answer class per question, trained on the human answers' soft scores and scored
// with the official VQA accuracy (docs/design.md section 3).
#include <fmt/format.h>

#include <filesystem>
#include <map>
#include <stdexcept>

#include "xmodal/data/vqa.h"
#include "xmodal/data/vqa_answers.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/task.h"
#include "xmodal/tasks/vqa.h"

namespace xmodal::tasks {
namespace {

using nlohmann::json;

std::string vqa_table(const std::map<std::string, double>& m, int64_t questions) {
  std::string t =
      fmt::format("| {:<16} | {:>8} |\n|{:-<18}|{:->10}|\n", "VQA accuracy", "%", "", "");
  const auto row = [&](const std::string& name, const std::string& key) {
    const auto it = m.find(key);
    if (it != m.end()) t += fmt::format("| {:<16} | {:>8.2f} |\n", name, 100 * it->second);
  };
  row("overall", "accuracy");
  row("yes/no", "accuracy_yes_no");
  row("number", "accuracy_number");
  row("other", "accuracy_other");
  for (const auto& [key, value] : m) {  // answer types other data sets may have
    if (key.rfind("accuracy_", 0) == 0 && key != "accuracy_yes_no" && key != "accuracy_number" &&
        key != "accuracy_other") {
      t += fmt::format("| {:<16} | {:>8.2f} |\n", key.substr(9), 100 * value);
    }
  }
  t +=
      fmt::format("({} questions, loss {:.4f})\n", questions, m.count("loss") ? m.at("loss") : 0.0);
  return t;
}

class VqaEvaluation : public Evaluation {
 public:
  VqaEvaluation(const data::TaskData& data, const std::vector<std::string>& classes,
                config::VqaProtocol protocol)
      : data_(data), classes_(classes), protocol_(protocol) {}

  void add(const models::ModelOutput& out, const data::Batch& batch) override {
    indices_.insert(indices_.end(), batch.indices.begin(), batch.indices.end());
    const auto [best, arg] = out.at("logits").max(1);
    const auto idx = arg.to(torch::kCPU).contiguous();
    for (int64_t i = 0; i < idx.size(0); ++i) answers_.push_back(idx[i].item<int64_t>());
  }

  std::map<std::string, double> metrics() override {
    if (!data_.has_targets) return {};
    std::vector<double> accuracies;
    std::vector<std::string> types;
    for (size_t i = 0; i < indices_.size(); ++i) {
      const auto& e =
          data::annotation_of<VqaAnnotation>(data_.examples.at(static_cast<size_t>(indices_[i])));
      accuracies.push_back(vqa_accuracy(classes_.at(answers_[i]), e.answers, protocol_));
      types.push_back(e.answer_type);
    }
    return vqa_metrics(accuracies, types);
  }

  void write(const std::string& out_dir, json& /*summary*/) const override {
    json results = json::array();  // the official results format
    for (size_t i = 0; i < indices_.size(); ++i) {
      results.push_back(
          {{"question_id", data_.examples[indices_[i]].id}, {"answer", classes_.at(answers_[i])}});
    }
    io::write_file_atomic((std::filesystem::path(out_dir) / "results.json").string(),
                          results.dump() + "\n");
  }

  std::string table(const std::map<std::string, double>& metrics) const override {
    if (!data_.has_targets) {
      return fmt::format("{} questions answered (no annotations: results only)\n", rows());
    }
    return vqa_table(metrics, rows());
  }

 private:
  const data::TaskData& data_;
  std::vector<std::string> classes_;
  config::VqaProtocol protocol_;
  std::vector<int64_t> answers_;  // the predicted answer class of each row
};

// The answer vocabulary: `classes`, or built from the split's human answers.
data::AnswerVocab answer_vocab(const config::Config& c, const std::string& split,
                               const data::VqaSet& set, const std::vector<std::string>* classes) {
  if (classes) return data::AnswerVocab(*classes);
  std::vector<std::vector<std::string>> answers;
  for (const auto& q : set.questions) answers.push_back(q.answers);
  auto built = data::AnswerVocab::build(answers, c.data.answer_min_count, c.data.answer_top_k);
  if (built.size() == 0) {
    throw std::runtime_error(data::vqa_annotations_file(c.data.root, split) +
                             ": no answer occurs data.answer_min_count (" +
                             std::to_string(c.data.answer_min_count) + ") times");
  }
  return built;
}

// The soft answer scores of a batch [B, answers].
data::Targets collate_vqa(const std::vector<const data::Example*>& rows, int64_t answers) {
  std::vector<float> soft(rows.size() * static_cast<size_t>(answers), 0.0f);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (const auto& [cls, score] : data::annotation_of<VqaAnnotation>(*rows[r]).answer_targets) {
      soft[r * static_cast<size_t>(answers) + static_cast<size_t>(cls)] = score;
    }
  }
  return {
      {kVqaScores,
       torch::tensor(soft, torch::kFloat32).view({static_cast<int64_t>(rows.size()), answers})}};
}

// The answer scores from the fusion's pooled [CLS] through an MLP (models::VqaHead, "head").
class VqaModelHead : public models::TaskHead {
 public:
  VqaModelHead(const models::HeadSizes& sizes, int64_t hidden, int64_t answers)
      : options_(sizes.fusion, hidden, answers) {}
  void attach(models::ModelImpl& model) override {
    head_ = model.add_module("head", models::VqaHead(options_));
  }
  void forward(models::ModelImpl& model, const models::Encoded& in,
               models::ModelOutput& out) override {
    out.image_features = in.sample_image_tokens();
    out.pooled = model.fuse(in);
    out.outputs["logits"] = head_(out.pooled);
  }

 private:
  models::VqaHeadOptions options_;
  models::VqaHead head_ = nullptr;
};

class VqaTask : public Task {
 public:
  models::HeadChoice head(const config::Config& c, const models::DataSizes& sizes) const override {
    models::HeadChoice h;
    h.make = [hidden = c.model.head.hidden, answers = sizes.num_classes](const auto& widths) {
      return std::make_shared<VqaModelHead>(widths, hidden, answers);
    };
    return h;
  }

  config::Task id() const override { return config::Task::vqa; }

  // One example per question, soft targets over the answer vocabulary; with train.aux, the
  // instances of its image (the COCO file of the same split).
  data::TaskData read_split(const config::Config& c, const std::string& split,
                            const std::vector<std::string>* classes,
                            data::BadInputPolicy& policy) const override {
    if (c.data.dataset == config::Dataset::coco) {
      throw std::invalid_argument("task vqa needs data.dataset vqa or scenes, not coco");
    }
    const data::VqaSet set = data::read_vqa(c.data.root, split, policy);
    const data::AnswerVocab vocab = answer_vocab(c, split, set, classes);
    data::TaskData data;
    data.class_names = vocab.answers();
    data.has_targets = set.has_annotations;
    std::map<int64_t, const data::CocoImage*> instances;
    data::CocoSet coco;
    if (c.train.aux.any() && set.has_annotations) {
      coco = data::read_coco(c.data.root, split, policy, /*with_captions=*/false);
      for (const auto& category : coco.categories) data.aux_class_names.push_back(category.name);
      for (const auto& image : coco.images) instances[image.id] = &image;
    }
    for (const auto& q : set.questions) {
      data::Example e;
      e.image_path = q.image_path;
      e.texts = {q.question};
      e.id = q.question_id;
      auto a = std::make_shared<VqaAnnotation>();
      a->answers = q.answers;
      a->answer_type = q.answer_type;
      a->answer_targets = vocab.targets(q.answers);
      e.annotation = std::move(a);
      if (!data.aux_class_names.empty()) {
        const auto it = instances.find(q.image_id);
        if (it == instances.end()) {
          throw std::runtime_error("train.aux: image " + std::to_string(q.image_id) +
                                   " of question " + std::to_string(q.question_id) + " is not in " +
                                   c.data.root + "/annotations/instances_" + split + ".json");
        }
        e.aux_counts = it->second->counts;
        if (c.train.aux.dense > 0 || c.train.aux.locate > 0) e.objects = it->second->objects;
      }
      data.examples.push_back(std::move(e));
    }
    data.collate = [answers = data.num_classes()](const auto& rows) {
      return collate_vqa(rows, answers);
    };
    return data;
  }
  bool vocabulary_from_training_split() const override { return true; }

  models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                        const c10::Device& device, const models::LossWeights& /*weights*/,
                        Collective* /*collective*/) const override {
    return models::vqa_loss(out.at("logits"), batch.target(kVqaScores).to(device));
  }

  torch::Tensor distill_loss(const models::ModelOutput& student, const models::ModelOutput& teacher,
                             double temperature) const override {
    return models::distill_sigmoid(student.at("logits"), teacher.at("logits"), temperature);
  }

  std::unique_ptr<Evaluation> evaluation(const data::TaskData& data,
                                         const std::vector<std::string>& classes,
                                         config::VqaProtocol protocol) const override {
    return std::make_unique<VqaEvaluation>(data, classes, protocol);
  }

  Answer answer(const models::ModelOutput& out, int64_t row,
                const std::vector<std::string>& classes, int k) const override {
    Answer a;
    a.kind = Answer::Kind::answers;
    a.classes = top_k(torch::sigmoid(out.at("logits")[row]), k, classes);
    return a;
  }

  torch::Tensor scores(const models::ModelOutput& out) const override { return out.at("logits"); }
};

}  // namespace

std::unique_ptr<Task> make_vqa_task() { return std::make_unique<VqaTask>(); }

}  // namespace xmodal::tasks
