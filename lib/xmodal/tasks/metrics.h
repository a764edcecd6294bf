// Task metrics (docs/design.md section 3). Values are fractions in [0, 1] (errors in counts for
// mae/rmse); tables print them as percentages.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "xmodal/config/config.h"

namespace xmodal::tasks {

/// VQA accuracy of one predicted answer against the human answers, as GT-Vision-Lab's
/// vqaEval.py computes it; then the mean over the leave-one-out subsets of min(1, matches / 3).
/// official (master since a013f00, 2021-03-11): prediction and human answers have newlines and
///   tabs turned into spaces and are trimmed; only when the human answers are not all
///   identical do both go through the punctuation and then the digit/article step (so "Yes."
///   does not match ten "yes").
/// legacy (its parent a4f1afd, and c4e6a0e): the prediction always goes through both steps;
///   the human answers, untrimmed, through the punctuation step only, and only when they are
///   not all identical.
double vqa_accuracy(const std::string& prediction, const std::vector<std::string>& human_answers,
                    config::VqaProtocol protocol = config::VqaProtocol::official);

/// Metric-name suffix of a VQA answer type: "yes/no" -> "yes_no", "number", "other"; other
/// spellings have every non-alphanumeric character replaced by '_'.
std::string answer_type_key(const std::string& answer_type);

/// accuracy (mean over questions) and accuracy_<type> for each answer type present.
std::map<std::string, double> vqa_metrics(const std::vector<double>& accuracies,
                                          const std::vector<std::string>& answer_types);

/// Per-category figures of a counting evaluation.
struct CategoryScores {
  double count_accuracy = 0;  ///< exact count, over images whose count is known
  double mae = 0;
  double precision = 0, recall = 0, f1 = 0;  ///< presence at probability 0.5
  double average_precision = 0;              ///< presence AP (NaN when no positive)
  int64_t support = 0;                       ///< images where the category is present
};

struct CountingScores {
  std::map<std::string, double> metrics;  ///< accuracy exact_match mae rmse f1_micro f1_macro map
  std::vector<CategoryScores> categories;
};

/// predicted_counts, targets [N, C] int64; presence_prob [N, C] float; crowd [N, C] bool or
/// undefined (true = count unknown: left out of count metrics, counted as present).
CountingScores counting_metrics(const torch::Tensor& predicted_counts,
                                const torch::Tensor& presence_prob, const torch::Tensor& targets,
                                const torch::Tensor& crowd);

/// Average precision of scores against binary labels (sklearn's definition: sum over the
/// distinct score thresholds of (R_n - R_{n-1}) P_n). NaN when there is no positive.
double average_precision(const std::vector<float>& scores, const std::vector<uint8_t>& labels);

/// Retrieval ranks: for each query (row of `scores` [Q, C]) the number of wrong candidates
/// (truth false) scored at least as high as its best true candidate, so rank 0 = found first.
/// Ties count against the query: a wrong candidate tied with the best true one ranks ahead of
/// it (a model that scores everything alike finds nothing). Rows without a true candidate get
/// rank C. truth [Q, C] bool.
torch::Tensor retrieval_ranks(const torch::Tensor& scores, const torch::Tensor& truth);

/// Percent of the queries with rank < k.
double recall_at(const torch::Tensor& ranks, int64_t k);

}  // namespace xmodal::tasks
