// A task (docs/design.md sections 3 and 10) as one unit: its head on the model, reading a split
// into examples it annotates and collating their targets into a batch, the loss of a batch, the
// evaluation of a split (predictions collected batch by batch, metrics, `xmodal eval`'s result
// files and table) and the answer `xmodal predict` writes for one input. One file per task
// (tasks/vqa.cpp, counting.cpp, classify.cpp, retrieval.cpp, with a header for what tests and
// other layers see of it), registered in tasks/registry.cpp; the model, the loader, the trainer,
// the evaluator, the predictor and the server reach a task only through this interface.
#pragma once

#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/losses.h"
#include "xmodal/models/model.h"
#include "xmodal/tasks/answer.h"

namespace xmodal::tasks {

/// The predictions over one split, collected batch by batch (eval mode, no gradients), then
/// scored against the split's targets and written.
class Evaluation {
 public:
  virtual ~Evaluation() = default;
  /// One batch's outputs; rows in data order.
  virtual void add(const models::ModelOutput& out, const data::Batch& batch) = 0;
  /// The task's metrics (config::task_metrics names, loss aside) over the rows added; empty when
  /// the split has no targets.
  virtual std::map<std::string, double> metrics() = 0;
  /// `xmodal eval`'s result files in `out_dir` (vqa: results.json; the others:
  /// predictions.jsonl), and the task's own fields of metrics.json into `summary`.
  virtual void write(const std::string& out_dir, nlohmann::json& summary) const = 0;
  /// The table `xmodal eval` prints; `metrics` as metrics() returned them, loss included.
  virtual std::string table(const std::map<std::string, double>& metrics) const = 0;
  /// After the last add(), before metrics(): retrieval with an ITM head re-ranks the top `k`
  /// contrastive candidates of each query by the matching head (`xmodal eval` with
  /// eval.rerank_k); the other tasks have nothing to do.
  virtual void rerank(models::ModelImpl& /*model*/, const c10::Device& /*device*/, int /*k*/) {}
  /// Rows added.
  int64_t rows() const { return static_cast<int64_t>(indices_.size()); }

 protected:
  /// Example index (into TaskData::examples) of each row.
  std::vector<int64_t> indices_;
};

/// The processes of a data-parallel run as a loss over the global batch sees them
/// (train/distributed.h implements it; tasks do not reach the communicator itself).
class Collective {
 public:
  virtual ~Collective() = default;
  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  /// Every process's `tensor` [n_p, ...] (n_p may differ) concatenated along dim 0 in rank
  /// order, without gradient; every process must call it, in the same order.
  virtual torch::Tensor all_gather(const torch::Tensor& tensor) = 0;
};

class Task {
 public:
  virtual ~Task() = default;
  virtual config::Task id() const = 0;
  /// Whether an input's text is part of the question (classify: the image alone).
  virtual bool reads_text() const { return true; }
  /// vqa: the classes are an answer vocabulary built from the training split, through which
  /// the other splits are read; the others: every split names the same categories.
  virtual bool vocabulary_from_training_split() const { return false; }
  /// caption: the model's classes are the tokenizer's vocabulary (its LM head's outputs, which
  /// the evaluation and the answer turn back into text); the others: the data's classes.
  virtual bool classes_are_vocabulary() const { return false; }

  /// Reads `split` of the configured data set (with data/'s file readers) into examples this
  /// task annotates, and sets the split's collate. `classes`: the classes to read it through
  /// (vqa: the answer vocabulary of the training split or of a checkpoint), or null for the
  /// split's own. Records a bad record through `policy`. Throws std::invalid_argument for a data
  /// set the task cannot read, std::runtime_error for unreadable or malformed files.
  virtual data::TaskData read_split(const config::Config& config, const std::string& split,
                                    const std::vector<std::string>* classes,
                                    data::BadInputPolicy& policy) const = 0;

  /// The task's head and what it needs of the model (the fusion mode, whether the fusion is
  /// built): the model composes encoders + fusion + this head and never asks for the task.
  virtual models::HeadChoice head(const config::Config& config,
                                  const models::DataSizes& sizes) const = 0;

  /// The loss of a batch as sums over its samples (models/losses.h); the batch's targets are
  /// moved to `device`. With `collective` (training on several processes), a loss over the
  /// whole batch (retrieval's contrastive loss) sees the global batch: its value is this
  /// process's share, its gradients summed over the processes are the global batch's.
  virtual models::LossSums loss(const models::ModelOutput& out, const data::Batch& batch,
                                const c10::Device& device, const models::LossWeights& weights,
                                Collective* collective = nullptr) const = 0;

  /// The distillation term of a batch (train.distill; models/losses.h), a sum over its
  /// samples: the student's outputs against a teacher's on the same batch, both softened by
  /// `temperature`. vqa: BCE against the teacher's sigmoid scores; classify: KL of the softmax;
  /// counting: both, for presence and for the count distributions, averaged over categories;
  /// retrieval: KL of the text -> image and image -> text similarity distributions (the ITM
  /// head is not distilled).
  virtual torch::Tensor distill_loss(const models::ModelOutput& student,
                                     const models::ModelOutput& teacher,
                                     double temperature) const = 0;

  /// An empty evaluation of `data` (which outlives it); `classes` are the model's.
  virtual std::unique_ptr<Evaluation> evaluation(const data::TaskData& data,
                                                 const std::vector<std::string>& classes,
                                                 config::VqaProtocol protocol) const = 0;

  /// The answer of row `row` of a batch of outputs (`top_k` classes where the task ranks them).
  virtual Answer answer(const models::ModelOutput& out, int64_t row,
                        const std::vector<std::string>& classes, int top_k) const = 0;
  /// The per-class scores of a batch of outputs [B, classes] (logits) that predict checks for
  /// non-finite values and explain follows back.
  virtual torch::Tensor scores(const models::ModelOutput& out) const = 0;
};

/// The task config names (registry.cpp).
const Task& task(config::Task id);

/// Split `split` of `config`'s data set read by its task (Task::read_split, with
/// data.on_bad_sample; a skipped record is reported once). `classes` as Task::read_split's.
data::TaskData load_split(const config::Config& config, const std::string& split,
                          const std::vector<std::string>* classes = nullptr);

/// The model of `config`'s task for the data's sizes (on the CPU): models::build_model with the
/// task's head.
models::Model build_model(const config::Config& config, const models::DataSizes& sizes);

/// The k most probable classes of `probabilities` [classes], best first.
std::vector<ClassScore> top_k(const torch::Tensor& probabilities, int64_t k,
                              const std::vector<std::string>& classes);

/// A non-finite value as null (JSON has no NaN).
nlohmann::json finite_or_null(double v);

}  // namespace xmodal::tasks
