// Task vqa: an answer class per question, trained on the human answers' soft scores and scored
// with the official VQA accuracy (docs/design.md section 3).
#include <fmt/format.h>

#include <filesystem>

#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/task.h"

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
    const auto [best, arg] = out.logits.max(1);
    const auto idx = arg.to(torch::kCPU).contiguous();
    for (int64_t i = 0; i < idx.size(0); ++i) answers_.push_back(idx[i].item<int64_t>());
  }

  std::map<std::string, double> metrics() override {
    if (!data_.has_targets) return {};
    std::vector<double> accuracies;
    std::vector<std::string> types;
    for (size_t i = 0; i < indices_.size(); ++i) {
      const auto& e = data_.examples.at(static_cast<size_t>(indices_[i]));
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
    out.logits = head_(out.pooled);
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
  bool vocabulary_from_training_split() const override { return true; }

  models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                        const c10::Device& device, const models::LossWeights& /*weights*/,
                        Collective* /*collective*/) const override {
    return models::vqa_loss(out.logits, batch.targets.to(device));
  }

  torch::Tensor distill_loss(const models::ModelOutput& student, const models::ModelOutput& teacher,
                             double temperature) const override {
    return models::distill_sigmoid(student.logits, teacher.logits, temperature);
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
    a.classes = top_k(torch::sigmoid(out.logits[row]), k, classes);
    return a;
  }

  torch::Tensor scores(const models::ModelOutput& out) const override { return out.logits; }
};

}  // namespace

std::unique_ptr<Task> make_vqa_task() { return std::make_unique<VqaTask>(); }

}  // namespace xmodal::tasks
