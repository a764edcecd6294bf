#include "xmodal/tasks/caption_metrics.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>
#include <unordered_map>
#include <unordered_set>

#include "xmodal/io/json.h"
#include "xmodal/tasks/ptb_tokenizer.h"

namespace xmodal::tasks {
namespace {

constexpr int kOrder = 4;        // n-grams up to 4, for BLEU and CIDEr-D
constexpr double kSigma = 6.0;   // CIDEr-D's length penalty
constexpr double kBeta = 1.2;    // ROUGE-L's recall weight
constexpr double kTiny = 1e-15;  // the official BLEU's smoothing constants
constexpr double kSmall = 1e-9;
// A results caption longer than this is refused (a caption is a sentence; the LCS of ROUGE-L is
// quadratic in its length).
constexpr size_t kMaxResultCaption = 10000;

using NgramCounts = std::array<std::unordered_map<std::string, int>, kOrder>;

// Python's str.split(): runs of whitespace separate, none at the ends.
std::vector<std::string> split_words(const std::string& s) {
  std::vector<std::string> words;
  size_t i = 0;
  while (i < s.size()) {
    while (i < s.size() && s[i] == ' ') ++i;
    size_t j = i;
    while (j < s.size() && s[j] != ' ') ++j;
    if (j > i) words.push_back(s.substr(i, j - i));
    i = j;
  }
  return words;
}

NgramCounts ngram_counts(const std::vector<std::string>& words) {
  NgramCounts counts;
  for (int k = 1; k <= kOrder; ++k) {
    for (size_t i = 0; i + k <= words.size(); ++i) {
      std::string gram = words[i];
      for (int j = 1; j < k; ++j) gram += ' ' + words[i + j];
      ++counts[k - 1][gram];
    }
  }
  return counts;
}

// --- BLEU (bleu_scorer.py: cook_refs, cook_test, compute_score with option "closest") ---

struct BleuStats {
  std::array<double, kOrder> correct{}, guess{};
  double test_len = 0, ref_len = 0;
};

BleuStats bleu_stats(const std::vector<std::string>& cand,
                     const std::vector<std::vector<std::string>>& refs) {
  NgramCounts max_ref;
  std::vector<int> ref_lens;
  for (const auto& r : refs) {
    ref_lens.push_back(static_cast<int>(r.size()));
    const NgramCounts c = ngram_counts(r);
    for (int k = 0; k < kOrder; ++k) {
      for (const auto& [g, n] : c[k]) max_ref[k][g] = std::max(max_ref[k][g], n);
    }
  }
  BleuStats s;
  const int test_len = static_cast<int>(cand.size());
  s.test_len = test_len;
  // closest reference length, ties to the shorter: min over (|l - testlen|, l)
  std::pair<int, int> best{INT32_MAX, INT32_MAX};
  for (int l : ref_lens) best = std::min(best, {std::abs(l - test_len), l});
  s.ref_len = best.second;
  const NgramCounts c = ngram_counts(cand);
  for (int k = 0; k < kOrder; ++k) {
    s.guess[k] = std::max(0, test_len - k);
    for (const auto& [g, n] : c[k]) {
      const auto it = max_ref[k].find(g);
      if (it != max_ref[k].end()) s.correct[k] += std::min(it->second, n);
    }
  }
  return s;
}

std::array<double, kOrder> bleu_from(const BleuStats& s) {
  std::array<double, kOrder> out{};
  double bleu = 1.0;
  for (int k = 0; k < kOrder; ++k) {
    bleu *= (s.correct[k] + kTiny) / (s.guess[k] + kSmall);
    out[k] = std::pow(bleu, 1.0 / (k + 1));
  }
  const double ratio = (s.test_len + kTiny) / (s.ref_len + kSmall);
  if (ratio < 1) {
    for (double& b : out) b *= std::exp(1 - 1 / ratio);
  }
  return out;
}

// --- ROUGE-L (rouge.py: tokens from split(" "), so "" is one empty token) ---

std::vector<std::string> split_on_space(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    const size_t sp = s.find(' ', start);
    out.push_back(s.substr(start, sp == std::string::npos ? std::string::npos : sp - start));
    if (sp == std::string::npos) return out;
    start = sp + 1;
  }
}

size_t lcs_length(const std::vector<std::string>& a, const std::vector<std::string>& b) {
  std::vector<size_t> prev(b.size() + 1, 0), cur(b.size() + 1, 0);
  for (size_t i = 1; i <= a.size(); ++i) {
    for (size_t j = 1; j <= b.size(); ++j) {
      cur[j] = a[i - 1] == b[j - 1] ? prev[j - 1] + 1 : std::max(prev[j], cur[j - 1]);
    }
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

double rouge_l(const std::string& cand, const std::vector<std::string>& refs) {
  const auto c = split_on_space(cand);
  double prec_max = 0, rec_max = 0;
  for (const auto& ref : refs) {
    const auto r = split_on_space(ref);
    const double lcs = static_cast<double>(lcs_length(r, c));
    prec_max = std::max(prec_max, lcs / static_cast<double>(c.size()));
    rec_max = std::max(rec_max, lcs / static_cast<double>(r.size()));
  }
  if (prec_max == 0 || rec_max == 0) return 0.0;
  return ((1 + kBeta * kBeta) * prec_max * rec_max) / (rec_max + kBeta * kBeta * prec_max);
}

// --- CIDEr-D (cider_scorer.py) ---

struct TfIdf {
  std::array<std::unordered_map<std::string, double>, kOrder> vec;
  std::array<double, kOrder> norm{};
  double length = 0;  // the official code counts bigrams here
};

TfIdf tf_idf(const NgramCounts& counts, const std::unordered_map<std::string, double>& df,
             double log_images) {
  TfIdf t;
  for (int k = 0; k < kOrder; ++k) {
    for (const auto& [g, tf] : counts[k]) {
      const auto it = df.find(g);
      const double d = std::log(std::max(1.0, it == df.end() ? 0.0 : it->second));
      const double v = tf * (log_images - d);
      t.vec[k][g] = v;
      t.norm[k] += v * v;
      if (k == 1) t.length += tf;
    }
    t.norm[k] = std::sqrt(t.norm[k]);
  }
  return t;
}

std::array<double, kOrder> cider_similarity(const TfIdf& hyp, const TfIdf& ref) {
  const double delta = hyp.length - ref.length;
  std::array<double, kOrder> val{};
  for (int k = 0; k < kOrder; ++k) {
    for (const auto& [g, v] : hyp.vec[k]) {
      const auto it = ref.vec[k].find(g);
      const double r = it == ref.vec[k].end() ? 0.0 : it->second;
      val[k] += std::min(v, r) * r;
    }
    if (hyp.norm[k] != 0 && ref.norm[k] != 0) val[k] /= hyp.norm[k] * ref.norm[k];
    val[k] *= std::exp(-(delta * delta) / (2 * kSigma * kSigma));
  }
  return val;
}

std::vector<double> cider_d(const std::vector<NgramCounts>& cands,
                            const std::vector<std::vector<NgramCounts>>& refs) {
  // document frequency: the number of images whose references hold the n-gram
  std::unordered_map<std::string, double> df;
  for (const auto& image_refs : refs) {
    std::unordered_set<std::string> seen;
    for (const auto& r : image_refs) {
      for (const auto& order : r) {
        for (const auto& [g, n] : order) seen.insert(g);
      }
    }
    for (const auto& g : seen) df[g] += 1;
  }
  const double log_images = std::log(static_cast<double>(refs.size()));
  std::vector<double> scores;
  for (size_t i = 0; i < cands.size(); ++i) {
    const TfIdf hyp = tf_idf(cands[i], df, log_images);
    std::array<double, kOrder> sum{};
    for (const auto& r : refs[i]) {
      const auto v = cider_similarity(hyp, tf_idf(r, df, log_images));
      for (int k = 0; k < kOrder; ++k) sum[k] += v[k];
    }
    double mean = 0;
    for (double v : sum) mean += v;
    mean /= kOrder;
    scores.push_back(mean / static_cast<double>(refs[i].size()) * 10.0);
  }
  return scores;
}

double average(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return v.empty() ? 0.0 : s / static_cast<double>(v.size());
}

}  // namespace

CaptionEvaluation score_captions(const std::vector<int64_t>& image_ids,
                                 const std::vector<std::string>& candidates,
                                 const std::vector<std::vector<std::string>>& references) {
  if (image_ids.size() != candidates.size() || candidates.size() != references.size()) {
    throw std::invalid_argument("score_captions: image ids, candidates and references differ");
  }
  CaptionEvaluation e;
  e.image_ids = image_ids;
  e.per_image.resize(candidates.size());
  BleuStats total;
  std::vector<NgramCounts> cand_counts;
  std::vector<std::vector<NgramCounts>> ref_counts(references.size());
  std::vector<double> rouge(candidates.size());
  for (size_t i = 0; i < candidates.size(); ++i) {
    if (references[i].empty()) {
      throw std::invalid_argument("score_captions: image " + std::to_string(image_ids[i]) +
                                  " has no reference captions");
    }
    const auto cand = split_words(candidates[i]);
    std::vector<std::vector<std::string>> refs;
    for (const auto& r : references[i]) {
      refs.push_back(split_words(r));
      ref_counts[i].push_back(ngram_counts(refs.back()));
    }
    cand_counts.push_back(ngram_counts(cand));
    const BleuStats s = bleu_stats(cand, refs);
    e.per_image[i].bleu = bleu_from(s);
    for (int k = 0; k < kOrder; ++k) {
      total.correct[k] += s.correct[k];
      total.guess[k] += s.guess[k];
    }
    total.test_len += s.test_len;
    total.ref_len += s.ref_len;
    rouge[i] = rouge_l(candidates[i], references[i]);
    e.per_image[i].rouge_l = rouge[i];
  }
  e.overall.bleu = bleu_from(total);
  e.overall.rouge_l = average(rouge);
  const auto cider = cider_d(cand_counts, ref_counts);
  for (size_t i = 0; i < cider.size(); ++i) e.per_image[i].cider_d = cider[i];
  e.overall.cider_d = average(cider);
  return e;
}

namespace {

// image id -> reference captions, from COCO's captions file or a Karpathy split file
std::unordered_map<int64_t, std::vector<std::string>> read_references(const std::string& path) {
  const auto file = io::JsonFile::load(path);
  std::unordered_map<int64_t, std::vector<std::string>> refs;
  if (file.root().is_object() && file.has(file.root(), "annotations")) {
    int64_t i = 0;
    for (simdjson::dom::element a : file.array(file.root(), "annotations", {})) {
      const io::Where where("annotations", i++);
      refs[file.integer(a, "image_id", where)].push_back(file.string(a, "caption", where));
    }
  } else if (file.root().is_object() && file.has(file.root(), "images")) {
    int64_t i = 0;
    for (simdjson::dom::element im : file.array(file.root(), "images", {})) {
      const io::Where where("images", i++);
      const int64_t id = file.has(im, "cocoid") ? file.integer(im, "cocoid", where)
                                                : file.integer(im, "imgid", where);
      int64_t k = 0;
      for (simdjson::dom::element s : file.array(im, "sentences", where)) {
        refs[id].push_back(file.string(s, "raw", io::Where(where, "sentences", k++)));
      }
    }
  } else {
    file.fail({},
              "expected COCO captions ({\"annotations\": [...]}) or a Karpathy split file "
              "({\"images\": [...]})");
  }
  return refs;
}

}  // namespace

CaptionEvaluation score_caption_results(const std::string& results_path,
                                        const std::string& references_path) {
  const auto results = io::JsonFile::load(results_path);
  simdjson::dom::array list;
  if (results.root().get_array().get(list)) {
    results.fail({}, "expected a JSON array of {\"image_id\", \"caption\"} objects");
  }
  const auto refs = read_references(references_path);
  std::vector<int64_t> ids;
  std::vector<std::string> candidates;
  std::vector<std::vector<std::string>> references;
  std::unordered_set<int64_t> seen;
  int64_t i = 0;
  for (simdjson::dom::element r : list) {
    const io::Where where("results", i++);
    const int64_t id = results.integer(r, "image_id", where);
    const std::string caption = results.string(r, "caption", where);
    if (caption.size() > kMaxResultCaption) {
      results.fail(where, "caption",
                   std::to_string(caption.size()) + " characters (limit " +
                       std::to_string(kMaxResultCaption) + ")");
    }
    if (!seen.insert(id).second) {
      results.fail(where, "image_id " + std::to_string(id) +
                              " has a second caption (the official evaluation scores one per "
                              "image)");
    }
    const auto it = refs.find(id);
    if (it == refs.end() || it->second.empty()) {
      results.fail(where, "image_id " + std::to_string(id) + " has no reference captions in " +
                              references_path);
    }
    ids.push_back(id);
    candidates.push_back(coco_caption_tokenize(caption));
    std::vector<std::string> tokenized;
    for (const auto& c : it->second) tokenized.push_back(coco_caption_tokenize(c));
    references.push_back(std::move(tokenized));
  }
  if (ids.empty()) results.fail({}, "no results to score");
  return score_captions(ids, candidates, references);
}

std::string format_caption_scores(const CaptionEvaluation& e) {
  const auto& o = e.overall;
  return fmt::format(
      "Bleu_1: {:.3f}\nBleu_2: {:.3f}\nBleu_3: {:.3f}\nBleu_4: {:.3f}\nROUGE_L: {:.3f}\n"
      "CIDEr: {:.3f}\n(images: {}; METEOR and SPICE are not computed)\n",
      o.bleu[0], o.bleu[1], o.bleu[2], o.bleu[3], o.rouge_l, o.cider_d, e.image_ids.size());
}

namespace {

nlohmann::json scores_json(const CaptionScores& s) {
  return {{"Bleu_1", s.bleu[0]}, {"Bleu_2", s.bleu[1]},  {"Bleu_3", s.bleu[2]},
          {"Bleu_4", s.bleu[3]}, {"ROUGE_L", s.rouge_l}, {"CIDEr", s.cider_d}};
}

}  // namespace

std::string caption_scores_json(const CaptionEvaluation& e, bool per_image) {
  nlohmann::json out = {{"overall", scores_json(e.overall)},
                        {"images", static_cast<int64_t>(e.image_ids.size())}};
  if (per_image) {
    auto list = nlohmann::json::array();
    for (size_t i = 0; i < e.image_ids.size(); ++i) {
      auto item = scores_json(e.per_image[i]);
      item["image_id"] = e.image_ids[i];
      list.push_back(std::move(item));
    }
    out["per_image"] = std::move(list);
  }
  return out.dump(1) + "\n";
}

}  // namespace xmodal::tasks
