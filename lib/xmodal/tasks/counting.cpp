// Task counting: for every category, whether it is in the image and how many there are
// (docs/design.md section 3); crowd regions make a count unknown, left out of the count loss and
// metrics.
#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>

#include <stdexcept>

#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/counting.h"
#include "xmodal/tasks/metrics.h"
#include "xmodal/tasks/task.h"

namespace xmodal::tasks {
namespace {

using nlohmann::json;

std::string counting_table(const CountingScores& s, const std::vector<std::string>& names,
                           const std::map<std::string, double>& m, int64_t images) {
  std::string t = fmt::format("| {:<14} | {:>7} | {:>6} | {:>6} | {:>6} | {:>7} |\n", "category",
                              "count %", "MAE", "F1 %", "AP %", "present");
  t += "|----------------|---------|--------|--------|--------|---------|\n";
  for (size_t k = 0; k < s.categories.size(); ++k) {
    const auto& c = s.categories[k];
    t += fmt::format("| {:<14} | {:>7.2f} | {:>6.3f} | {:>6.2f} | {:>6} | {:>7} |\n", names[k],
                     100 * c.count_accuracy, c.mae, 100 * c.f1,
                     std::isnan(c.average_precision)
                         ? std::string("-")
                         : fmt::format("{:.2f}", 100 * c.average_precision),
                     c.support);
  }
  t += fmt::format(
      "count accuracy {:.2f}%, exact match {:.2f}%, MAE {:.3f}, RMSE {:.3f}, presence F1 micro "
      "{:.2f}% macro {:.2f}%, mAP {:.2f}% ({} images, loss {:.4f})\n",
      100 * m.at("accuracy"), 100 * m.at("exact_match"), m.at("mae"), m.at("rmse"),
      100 * m.at("f1_micro"), 100 * m.at("f1_macro"), 100 * m.at("map"), images, m.at("loss"));
  return t;
}

torch::Tensor cat_or_empty(const std::vector<torch::Tensor>& parts, int64_t classes,
                           torch::Dtype dtype) {
  return parts.empty() ? torch::zeros({0, classes}, dtype) : torch::cat(parts);
}

class CountingEvaluation : public Evaluation {
 public:
  CountingEvaluation(const data::TaskData& data, const std::vector<std::string>& classes)
      : data_(data), classes_(classes) {}

  void add(const models::ModelOutput& out, const data::Batch& batch) override {
    indices_.insert(indices_.end(), batch.indices.begin(), batch.indices.end());
    presence_.push_back(torch::sigmoid(out.at("presence")).to(torch::kCPU));
    counts_.push_back(out.at("counts").argmax(2).to(torch::kCPU));
    if (data_.has_targets) {
      targets_.push_back(batch.target(kCountingCounts));
      crowd_.push_back(batch.target(kCountingCrowd));
    }
  }

  std::map<std::string, double> metrics() override {
    if (!data_.has_targets) return {};
    const int64_t c = data_.num_classes();
    scores_ = counting_metrics(
        cat_or_empty(counts_, c, torch::kInt64), cat_or_empty(presence_, c, torch::kFloat32),
        cat_or_empty(targets_, c, torch::kInt64), cat_or_empty(crowd_, c, torch::kBool));
    return scores_.metrics;
  }

  void write(const std::string& out_dir, json& summary) const override {
    const int64_t c = data_.num_classes();
    const auto presence = cat_or_empty(presence_, c, torch::kFloat32).contiguous();
    const auto counts = cat_or_empty(counts_, c, torch::kInt64).contiguous();
    std::string lines;
    for (size_t i = 0; i < indices_.size(); ++i) {
      json counts_json = json::object(), presence_json = json::object();
      for (size_t k = 0; k < classes_.size(); ++k) {
        const auto at = static_cast<int64_t>(i);
        const auto kk = static_cast<int64_t>(k);
        counts_json[classes_[k]] = counts[at][kk].item<int64_t>();
        presence_json[classes_[k]] = presence[at][kk].item<float>();
      }
      lines += json{{"image_id", data_.examples[indices_[i]].id},
                    {"counts", counts_json},
                    {"presence", presence_json}}
                   .dump() +
               "\n";
    }
    io::write_file_atomic((std::filesystem::path(out_dir) / "predictions.jsonl").string(), lines);
    if (!data_.has_targets) return;
    json per_category = json::array();
    for (size_t k = 0; k < scores_.categories.size(); ++k) {
      const auto& cat = scores_.categories[k];
      per_category.push_back({{"category", classes_[k]},
                              {"count_accuracy", cat.count_accuracy},
                              {"mae", cat.mae},
                              {"precision", cat.precision},
                              {"recall", cat.recall},
                              {"f1", cat.f1},
                              {"average_precision", finite_or_null(cat.average_precision)},
                              {"support", cat.support}});
    }
    summary["per_category"] = per_category;
  }

  std::string table(const std::map<std::string, double>& metrics) const override {
    if (!data_.has_targets) return fmt::format("{} images predicted (no annotations)\n", rows());
    return counting_table(scores_, classes_, metrics, rows());
  }

 private:
  const data::TaskData& data_;
  std::vector<std::string> classes_;
  std::vector<torch::Tensor> presence_, counts_, targets_, crowd_;
  CountingScores scores_;  // set by metrics()
};

// The counts of a batch [B, C] (clamped to max_count) and their crowd flags [B, C].
data::Targets collate_counting(const std::vector<const data::Example*>& rows, int64_t categories,
                               int64_t max_count) {
  std::vector<int64_t> counts, crowd;
  for (const data::Example* e : rows) {
    const auto& a = data::annotation_of<CountingAnnotation>(*e);
    for (int64_t c = 0; c < categories; ++c) {
      counts.push_back(std::min<int64_t>(a.counts[c], max_count));
      crowd.push_back(a.crowd[c]);
    }
  }
  const auto b = static_cast<int64_t>(rows.size());
  return {
      {kCountingCounts, torch::tensor(counts, torch::kLong).view({b, categories})},
      {kCountingCrowd, torch::tensor(crowd, torch::kLong).view({b, categories}).to(torch::kBool)}};
}

// Presence and count logits per category from the fusion's pooled [CLS]
// (models::CountingHead, "head").
class CountingModelHead : public models::TaskHead {
 public:
  CountingModelHead(const models::HeadSizes& sizes, int64_t hidden, int64_t categories,
                    int64_t max_count)
      : options_(sizes.fusion, hidden, categories, max_count) {}
  void attach(models::ModelImpl& model) override {
    head_ = model.add_module("head", models::CountingHead(options_));
  }
  void forward(models::ModelImpl& model, const models::Encoded& in,
               models::ModelOutput& out) override {
    out.image_features = in.sample_image_tokens();
    out.pooled = model.fuse(in);
    auto logits = head_(out.pooled);
    out.outputs["presence"] = logits.presence;
    out.outputs["counts"] = logits.counts;
  }

 private:
  models::CountingHeadOptions options_;
  models::CountingHead head_ = nullptr;
};

class CountingTask : public Task {
 public:
  models::HeadChoice head(const config::Config& c, const models::DataSizes& sizes) const override {
    models::HeadChoice h;
    h.make = [hidden = c.model.head.hidden, categories = sizes.num_classes,
              max_count = c.model.head.max_count](const auto& widths) {
      return std::make_shared<CountingModelHead>(widths, hidden, categories, max_count);
    };
    return h;
  }

  config::Task id() const override { return config::Task::counting; }

  // One example per image (scenes or COCO files) with all its captions (the loader draws one
  // per epoch) and its objects per category.
  data::TaskData read_split(const config::Config& c, const std::string& split,
                            const std::vector<std::string>* /*classes*/,
                            data::BadInputPolicy& policy) const override {
    if (c.data.dataset == config::Dataset::vqa) {
      throw std::invalid_argument("task counting needs data.dataset coco or scenes, not vqa");
    }
    const data::CocoSet set = data::read_coco(c.data.root, split, policy);
    data::TaskData data;
    for (const auto& category : set.categories) data.class_names.push_back(category.name);
    const bool objects = c.train.aux.dense > 0 || c.train.aux.locate > 0;
    if (objects) data.aux_class_names = data.class_names;
    for (const auto& image : set.images) {
      data::Example e;
      e.image_path = image.path;
      e.texts = image.captions;
      if (e.texts.empty()) e.texts = {"how many of each kind of object are there?"};
      e.id = image.id;
      auto a = std::make_shared<CountingAnnotation>();
      a->counts = image.counts;
      a->crowd = image.crowd;
      e.annotation = std::move(a);
      if (objects) e.objects = image.objects;
      data.examples.push_back(std::move(e));
    }
    data.collate = [categories = data.num_classes(), max_count = c.model.head.max_count](
                       const auto& rows) { return collate_counting(rows, categories, max_count); };
    return data;
  }

  models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                        const c10::Device& device, const models::LossWeights& weights,
                        Collective* /*collective*/) const override {
    return models::counting_loss(out.at("presence"), out.at("counts"),
                                 batch.target(kCountingCounts).to(device),
                                 batch.target(kCountingCrowd).to(device), weights);
  }

  torch::Tensor distill_loss(const models::ModelOutput& student, const models::ModelOutput& teacher,
                             double temperature) const override {
    const auto categories = static_cast<double>(student.at("presence").size(1));
    return models::distill_sigmoid(student.at("presence"), teacher.at("presence"), temperature,
                                   categories) +
           models::distill_softmax(student.at("counts"), teacher.at("counts"), temperature,
                                   categories);
  }

  std::unique_ptr<Evaluation> evaluation(const data::TaskData& data,
                                         const std::vector<std::string>& classes,
                                         config::VqaProtocol /*protocol*/) const override {
    return std::make_unique<CountingEvaluation>(data, classes);
  }

  Answer answer(const models::ModelOutput& out, int64_t row,
                const std::vector<std::string>& classes, int /*top_k*/) const override {
    const auto probs = torch::sigmoid(out.at("presence")[row]).to(torch::kCPU);
    const auto counts = out.at("counts")[row].argmax(1).to(torch::kCPU);
    Answer a;
    a.kind = Answer::Kind::categories;
    for (size_t k = 0; k < classes.size(); ++k) {  // every category, in order
      const auto kk = static_cast<int64_t>(k);
      ClassScore c;
      c.name = classes[k];
      c.probability = probs[kk].item<float>();
      c.count = counts[kk].item<int64_t>();
      a.classes.push_back(std::move(c));
    }
    return a;
  }

  torch::Tensor scores(const models::ModelOutput& out) const override { return out.at("presence"); }
};

}  // namespace

std::unique_ptr<Task> make_counting_task() { return std::make_unique<CountingTask>(); }

}  // namespace xmodal::tasks
