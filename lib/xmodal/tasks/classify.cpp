// Task classify: one class per image from the ViT alone (encoder pretraining, docs/design.md
// section 3), cross-entropy, accuracy and top-5 accuracy.
#include <fmt/format.h>

#include <algorithm>
#include <filesystem>

#include <stdexcept>

#include "xmodal/data/labelled.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/classify.h"
#include "xmodal/tasks/task.h"

namespace xmodal::tasks {
namespace {

using nlohmann::json;

class ClassifyEvaluation : public Evaluation {
 public:
  ClassifyEvaluation(const data::TaskData& data, const std::vector<std::string>& classes)
      : data_(data), classes_(classes) {}

  void add(const models::ModelOutput& out, const data::Batch& batch) override {
    indices_.insert(indices_.end(), batch.indices.begin(), batch.indices.end());
    const auto [best, arg] = torch::softmax(out.at("logits"), 1).max(1);
    const auto p = best.to(torch::kCPU).contiguous();
    const auto idx = arg.to(torch::kCPU).contiguous();
    for (int64_t i = 0; i < idx.size(0); ++i) {
      labels_.push_back(idx[i].item<int64_t>());
      scores_.push_back(p[i].item<float>());
    }
    if (data_.has_targets) {
      const int64_t k = std::min<int64_t>(5, out.at("logits").size(1));
      const auto top = std::get<1>(out.at("logits").topk(k, 1)).to(torch::kCPU);
      const auto& labels = batch.target(kClassifyLabels);
      top5_.push_back(top.eq(labels.unsqueeze(1)).any(1));
      targets_.push_back(labels);
    }
  }

  std::map<std::string, double> metrics() override {
    if (!data_.has_targets) return {};
    if (rows() == 0) return {{"accuracy", 0.0}, {"top5_accuracy", 0.0}};
    const auto predicted = torch::tensor(labels_, torch::kLong);
    return {
        {"accuracy", predicted.eq(torch::cat(targets_)).to(torch::kDouble).mean().item<double>()},
        {"top5_accuracy", torch::cat(top5_).to(torch::kDouble).mean().item<double>()}};
  }

  void write(const std::string& out_dir, json& /*summary*/) const override {
    std::string lines;
    for (size_t i = 0; i < indices_.size(); ++i) {
      const auto& e = data_.examples[indices_[i]];
      json line = {{"id", e.id},
                   {"image", e.image_path},
                   {"label", classes_.at(labels_[i])},
                   {"score", scores_[i]}};
      if (data_.has_targets) {
        line["target"] = classes_.at(data::annotation_of<ClassifyAnnotation>(e).label);
      }
      lines += line.dump() + "\n";
    }
    io::write_file_atomic((std::filesystem::path(out_dir) / "predictions.jsonl").string(), lines);
  }

  std::string table(const std::map<std::string, double>& m) const override {
    if (!data_.has_targets) return fmt::format("{} images classified (no labels)\n", rows());
    return fmt::format("{} images: accuracy {:.2f}%, top-5 {:.2f}%\n", rows(),
                       100 * m.at("accuracy"), 100 * m.at("top5_accuracy"));
  }

 private:
  const data::TaskData& data_;
  std::vector<std::string> classes_;
  std::vector<int64_t> labels_;  // the predicted class of each row, and its probability
  std::vector<float> scores_;
  std::vector<torch::Tensor> top5_, targets_;
};

// The class indices of a batch [B].
data::Targets collate_classify(const std::vector<const data::Example*>& rows) {
  std::vector<int64_t> labels;
  for (const data::Example* e : rows) {
    labels.push_back(data::annotation_of<ClassifyAnnotation>(*e).label);
  }
  return {{kClassifyLabels, torch::tensor(labels, torch::kLong)}};
}

// A linear layer on the image encoder's [CLS] token ("head"); no text encoder, no fusion.
class ClassifyModelHead : public models::TaskHead {
 public:
  ClassifyModelHead(const models::HeadSizes& sizes, int64_t classes)
      : inputs_(sizes.vision), classes_(classes) {}
  void attach(models::ModelImpl& model) override {
    head_ = model.add_module("head", models::Linear(inputs_, classes_));
  }
  void forward(models::ModelImpl& /*model*/, const models::Encoded& in,
               models::ModelOutput& out) override {
    out.pooled = in.sample_image_tokens().select(1, 0);  // the ViT's [CLS], after its norm
    out.outputs["logits"] = head_(out.pooled);
  }

 private:
  int64_t inputs_, classes_;
  models::Linear head_ = nullptr;
};

class ClassifyTask : public Task {
 public:
  models::HeadChoice head(const config::Config& /*c*/,
                          const models::DataSizes& sizes) const override {
    models::HeadChoice h;
    h.make = [classes = sizes.num_classes](const auto& widths) {
      return std::make_shared<ClassifyModelHead>(widths, classes);
    };
    h.mode = config::FusionMode::image_only;  // the ViT alone
    h.build_fusion = false;
    return h;
  }

  config::Task id() const override { return config::Task::classify; }

  // One example per labelled image (Fashion-MNIST IDX files or an image folder, whose classes
  // are the training split's folders).
  data::TaskData read_split(const config::Config& c, const std::string& split,
                            const std::vector<std::string>* /*classes*/,
                            data::BadInputPolicy& /*policy*/) const override {
    data::LabelledSet set;
    if (c.data.dataset == config::Dataset::fashion_mnist) {
      set = data::read_fashion_mnist(c.data.root, split);
    } else if (c.data.dataset == config::Dataset::image_folder) {
      std::vector<std::string> classes;
      if (split != c.data.train_split) {
        classes = data::read_image_folder(c.data.root, c.data.train_split).class_names;
      }
      set = data::read_image_folder(c.data.root, split, classes);
    } else {
      throw std::invalid_argument("task classify needs data.dataset fashion_mnist or image_folder");
    }
    data::TaskData data;
    data.class_names = set.class_names;
    for (auto& image : set.images) {
      data::Example e;
      e.image_path = image.path;
      e.id = image.id;
      auto a = std::make_shared<ClassifyAnnotation>();
      a->label = image.label;
      e.annotation = std::move(a);
      e.pixels = image.pixels;
      data.examples.push_back(std::move(e));
    }
    data.collate = collate_classify;
    return data;
  }
  bool reads_text() const override { return false; }

  models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                        const c10::Device& device, const models::LossWeights& /*weights*/,
                        Collective* /*collective*/) const override {
    return models::classify_loss(out.at("logits"), batch.target(kClassifyLabels).to(device));
  }

  torch::Tensor distill_loss(const models::ModelOutput& student, const models::ModelOutput& teacher,
                             double temperature) const override {
    return models::distill_softmax(student.at("logits"), teacher.at("logits"), temperature);
  }

  std::unique_ptr<Evaluation> evaluation(const data::TaskData& data,
                                         const std::vector<std::string>& classes,
                                         config::VqaProtocol /*protocol*/) const override {
    return std::make_unique<ClassifyEvaluation>(data, classes);
  }

  Answer answer(const models::ModelOutput& out, int64_t row,
                const std::vector<std::string>& classes, int k) const override {
    Answer a;
    a.kind = Answer::Kind::labels;
    a.classes = top_k(torch::softmax(out.at("logits")[row], 0), k, classes);
    return a;
  }

  torch::Tensor scores(const models::ModelOutput& out) const override { return out.at("logits"); }
};

}  // namespace

std::unique_ptr<Task> make_classify_task() { return std::make_unique<ClassifyTask>(); }

}  // namespace xmodal::tasks
