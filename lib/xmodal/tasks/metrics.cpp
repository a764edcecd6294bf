#include "xmodal/tasks/metrics.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <limits>
#include <numeric>
#include <set>
#include <stdexcept>

#include "xmodal/data/vqa_answers.h"

namespace xmodal::tasks {
namespace {

std::string official_trim(std::string text) {
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  // Python's str.strip() on ASCII text: whitespace and the separators \x1c-\x1f at both ends.
  const auto is_space = [](char c) {
    return std::isspace(static_cast<unsigned char>(c)) != 0 || (c >= '\x1c' && c <= '\x1f');
  };
  const auto begin = std::find_if_not(text.begin(), text.end(), is_space);
  const auto end = std::find_if_not(text.rbegin(), text.rend(), is_space).base();
  return begin < end ? std::string(begin, end) : std::string();
}

double f1_of(double tp, double fp, double fn) {
  const double d = 2 * tp + fp + fn;
  return d > 0 ? 2 * tp / d : 0.0;
}

}  // namespace

double vqa_accuracy(const std::string& prediction, const std::vector<std::string>& human_answers,
                    config::VqaProtocol protocol) {
  if (human_answers.empty()) return 0.0;
  const auto normalise = [](const std::string& text) {
    return data::vqa_process_digit_article(data::vqa_process_punctuation(text));
  };
  std::string res = official_trim(prediction);
  std::vector<std::string> gts = human_answers;
  if (protocol == config::VqaProtocol::official) {
    for (auto& g : gts) g = official_trim(g);
    const std::set<std::string> distinct(gts.begin(), gts.end());
    if (distinct.size() > 1) {
      for (auto& g : gts) g = normalise(g);
      res = normalise(res);
    }
  } else {
    res = normalise(res);
    const std::set<std::string> distinct(gts.begin(), gts.end());
    if (distinct.size() > 1) {
      for (auto& g : gts) g = data::vqa_process_punctuation(g);
    }
  }
  double sum = 0;
  for (size_t i = 0; i < gts.size(); ++i) {
    // The script removes every answer equal to the left-out one ("item != gtAnsDatum" compares
    // the whole record, answer_id included, so exactly one is removed).
    int matches = 0;
    for (size_t j = 0; j < gts.size(); ++j) {
      if (j != i && gts[j] == res) ++matches;
    }
    sum += std::min(1.0, matches / 3.0);
  }
  return sum / static_cast<double>(gts.size());
}

std::string answer_type_key(const std::string& answer_type) {
  if (answer_type == "yes/no") return "yes_no";
  std::string key = answer_type;
  for (char& c : key) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return key;
}

std::map<std::string, double> vqa_metrics(const std::vector<double>& accuracies,
                                          const std::vector<std::string>& answer_types) {
  if (accuracies.size() != answer_types.size()) {
    throw std::invalid_argument("vqa_metrics: one answer type per accuracy");
  }
  std::map<std::string, std::pair<double, int64_t>> by_type;
  double total = 0;
  for (size_t i = 0; i < accuracies.size(); ++i) {
    total += accuracies[i];
    auto& slot = by_type["accuracy_" + answer_type_key(answer_types[i])];
    slot.first += accuracies[i];
    slot.second += 1;
  }
  std::map<std::string, double> metrics;
  metrics["accuracy"] = accuracies.empty() ? 0.0 : total / static_cast<double>(accuracies.size());
  for (const auto& [key, slot] : by_type)
    metrics[key] = slot.first / static_cast<double>(slot.second);
  return metrics;
}

double average_precision(const std::vector<float>& scores, const std::vector<uint8_t>& labels) {
  const size_t n = scores.size();
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  const double positives = static_cast<double>(std::count(labels.begin(), labels.end(), 1));
  if (positives == 0) return std::nan("");
  double tp = 0, fp = 0, ap = 0, last_recall = 0;
  for (size_t i = 0; i < n; ++i) {
    (labels[order[i]] ? tp : fp) += 1;
    // Ties share one threshold: only the last of a run of equal scores closes a step.
    if (i + 1 < n && scores[order[i + 1]] == scores[order[i]]) continue;
    const double recall = tp / positives;
    ap += (recall - last_recall) * (tp / (tp + fp));
    last_recall = recall;
  }
  return ap;
}

CountingScores counting_metrics(const torch::Tensor& predicted_counts,
                                const torch::Tensor& presence_prob, const torch::Tensor& targets,
                                const torch::Tensor& crowd) {
  if (predicted_counts.sizes() != targets.sizes() || presence_prob.sizes() != targets.sizes() ||
      targets.dim() != 2) {
    throw std::invalid_argument("counting_metrics: predictions and targets must all be [N, C]");
  }
  const auto pred = predicted_counts.to(torch::kInt64).contiguous();
  const auto prob = presence_prob.to(torch::kFloat32).contiguous();
  const auto tgt = targets.to(torch::kInt64).contiguous();
  const auto unk = crowd.defined() ? crowd.to(torch::kBool).contiguous()
                                   : torch::zeros(targets.sizes(), torch::kBool);
  const int64_t n = tgt.size(0), c = tgt.size(1);
  const int64_t* p = pred.data_ptr<int64_t>();
  const float* s = prob.data_ptr<float>();
  const int64_t* t = tgt.data_ptr<int64_t>();
  const bool* u = unk.data_ptr<bool>();

  CountingScores out;
  out.categories.resize(static_cast<size_t>(c));
  std::vector<double> known(c, 0), correct(c, 0), abs_err(c, 0), tp(c, 0), fp(c, 0), fn(c, 0);
  double sq_err = 0, all_known = 0, all_correct = 0, all_abs = 0;
  int64_t exact_images = 0;
  std::vector<std::vector<float>> scores(c);
  std::vector<std::vector<uint8_t>> labels(c);
  for (int64_t i = 0; i < n; ++i) {
    bool exact = true;
    for (int64_t k = 0; k < c; ++k) {
      const int64_t at = i * c + k;
      const bool present = t[at] > 0 || u[at];
      const bool predicted = s[at] > 0.5f;
      scores[k].push_back(s[at]);
      labels[k].push_back(present ? 1 : 0);
      if (present) out.categories[k].support += 1;
      if (predicted && present) tp[k] += 1;
      if (predicted && !present) fp[k] += 1;
      if (!predicted && present) fn[k] += 1;
      if (u[at]) continue;
      const double err = static_cast<double>(p[at] - t[at]);
      known[k] += 1;
      abs_err[k] += std::abs(err);
      sq_err += err * err;
      if (p[at] == t[at]) {
        correct[k] += 1;
      } else {
        exact = false;
      }
    }
    if (exact) ++exact_images;
  }
  double sum_tp = 0, sum_fp = 0, sum_fn = 0, f1_sum = 0, ap_sum = 0;
  int64_t f1_n = 0, ap_n = 0;
  for (int64_t k = 0; k < c; ++k) {
    auto& cat = out.categories[k];
    cat.count_accuracy = known[k] > 0 ? correct[k] / known[k] : 0.0;
    cat.mae = known[k] > 0 ? abs_err[k] / known[k] : 0.0;
    cat.precision = tp[k] + fp[k] > 0 ? tp[k] / (tp[k] + fp[k]) : 0.0;
    cat.recall = tp[k] + fn[k] > 0 ? tp[k] / (tp[k] + fn[k]) : 0.0;
    cat.f1 = f1_of(tp[k], fp[k], fn[k]);
    cat.average_precision = average_precision(scores[k], labels[k]);
    sum_tp += tp[k];
    sum_fp += fp[k];
    sum_fn += fn[k];
    all_known += known[k];
    all_correct += correct[k];
    all_abs += abs_err[k];
    if (tp[k] + fp[k] + fn[k] > 0) {  // categories never present nor predicted have no F1
      f1_sum += cat.f1;
      ++f1_n;
    }
    if (!std::isnan(cat.average_precision)) {
      ap_sum += cat.average_precision;
      ++ap_n;
    }
  }
  auto& m = out.metrics;
  m["accuracy"] = all_known > 0 ? all_correct / all_known : 0.0;
  m["exact_match"] = n > 0 ? static_cast<double>(exact_images) / static_cast<double>(n) : 0.0;
  m["mae"] = all_known > 0 ? all_abs / all_known : 0.0;
  m["rmse"] = all_known > 0 ? std::sqrt(sq_err / all_known) : 0.0;
  m["f1_micro"] = f1_of(sum_tp, sum_fp, sum_fn);
  m["f1_macro"] = f1_n > 0 ? f1_sum / static_cast<double>(f1_n) : 0.0;
  m["map"] = ap_n > 0 ? ap_sum / static_cast<double>(ap_n) : 0.0;
  return out;
}

torch::Tensor retrieval_ranks(const torch::Tensor& scores, const torch::Tensor& truth) {
  TORCH_CHECK(scores.dim() == 2 && scores.sizes() == truth.sizes(),
              "retrieval_ranks: scores and truth [Q, C] differ");
  const auto& s = scores;
  const auto neg_inf = -std::numeric_limits<double>::infinity();
  const auto best = s.masked_fill(truth.logical_not(), neg_inf).amax(1, true);  // [Q, 1]
  auto ranks = (s.ge(best) & truth.logical_not()).sum(1);
  return torch::where(truth.any(1), ranks, torch::full_like(ranks, scores.size(1)));
}

double recall_at(const torch::Tensor& ranks, int64_t k) {
  if (ranks.numel() == 0) return 0.0;
  return 100.0 * ranks.lt(k).to(torch::kFloat64).mean().item<double>();
}

}  // namespace xmodal::tasks
