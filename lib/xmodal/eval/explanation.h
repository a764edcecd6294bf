// How far an explanation (a heat map over the image's patch grid, infer::Explanation) points at
// the evidence, measured on a split with ground-truth boxes (`xmodal explain --evaluate`):
//
//   pointing game      the hottest patch's centre lies inside a box of the category the
//                      question names, give or take a tolerance (Zhang et al. 2016: 15 px of a
//                      224 px image, scaled to the model's input side)
//   energy in boxes    the share of the heat map's mass inside the union of those boxes, next
//                      to the share of the image's area they cover (what a uniform map gets)
//   deletion/insertion the model's probability for its answer as the most relevant patches are
//                      blanked (deletion) or revealed on a blank image (insertion), in order;
//                      the area under each curve next to that of a random order (Petsiuk et
//                      al. 2018, RISE). A faithful map deletes fast (low AUC) and inserts fast
//                      (high AUC).
//
//   xmodal explain --evaluate --checkpoint CKPT [--split test] [--method M ...] [--limit N]
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

namespace xmodal::eval {

/// A box in the pixels of the model's input image (side x side).
struct PixelBox {
  double x0 = 0, y0 = 0, x1 = 0, y1 = 0;
};

/// The pointing game's tolerance for a model input of `side` pixels: 15 px at 224 px.
double pointing_tolerance(int side);

/// The patches in order of relevance, most relevant first (ties: lower index first).
std::vector<int> relevance_order(const std::vector<double>& weights);

/// Whether the centre of the most relevant patch of `weights` (grid x grid, row-major, over a
/// side x side image) lies within `tolerance` pixels of one of `boxes`. false without boxes or
/// when every weight is equal (a map that points nowhere).
bool pointing_hit(const std::vector<double>& weights, int grid, int side,
                  const std::vector<PixelBox>& boxes, double tolerance);

/// The share of the boxes' union in a side x side image (pixel centres inside a box).
double box_area_share(int side, const std::vector<PixelBox>& boxes);

/// The share of the map's mass inside the boxes' union, each patch's weight spread evenly over
/// its pixels (negative weights count as 0); 0 for a map without mass.
double energy_in_boxes(const std::vector<double>& weights, int grid, int side,
                       const std::vector<PixelBox>& boxes);

/// The area under a curve sampled at evenly spaced fractions 0, 1/n, ..., 1 (n + 1 values,
/// trapezoid rule); a constant curve c has area c.
double curve_auc(const std::vector<double>& values);

/// A deletion and an insertion curve over `patches` patches taken in `order` (a permutation):
/// `scores` gets masks (one flag per patch, 1 = blanked) and returns the model's probability
/// for each. Deletion blanks the first k patches of the order, insertion blanks all but them,
/// for k = 0..patches (patches + 1 values each).
struct PatchCurves {
  std::vector<double> deletion, insertion;
};
PatchCurves patch_curves(
    const std::vector<int>& order,
    const std::function<std::vector<double>(const std::vector<std::vector<uint8_t>>&)>& scores);

/// The category a question names: the longest of `names` (or its plural: `plurals[i]` when
/// given, else name + "s" / "es") found as whole words in `question` (case-insensitive); -1
/// when none is.
int named_category(const std::string& question, const std::vector<std::string>& names,
                   const std::vector<std::string>& plurals = {});

/// Running sums of one method on one answer type.
struct ExplanationScores {
  int64_t pointed = 0, hits = 0;                     ///< questions naming a present category; hits
  double energy = 0, area = 0;                       ///< sums over the pointed questions
  int64_t curves = 0;                                ///< questions with deletion / insertion curves
  double deletion = 0, insertion = 0;                ///< AUC sums, the method's order
  double deletion_random = 0, insertion_random = 0;  ///< AUC sums, a random order
  void add(const ExplanationScores& other);
};

/// The means of `s`: pointing, energy, area, deletion, insertion, deletion_random,
/// insertion_random (those without questions are left out), and the counts.
std::map<std::string, double> explanation_metrics(const ExplanationScores& s);

struct ExplanationEvalOptions {
  std::string checkpoint;
  std::vector<std::string> overrides;  ///< config assignments (run.threads, eval.quantize...)
  std::string split = "test";
  std::vector<std::string> methods = {"rollout", "chefer"};
  int64_t limit = 1000;  ///< questions (a seeded sample of the split), 0 = all
  uint64_t seed = 1234;  ///< the sample and the random orders
  bool curves = true;    ///< deletion / insertion (P + 1 forward passes per curve)
  int progress_every = 200;
};

struct ExplanationEvalResult {
  std::string split;
  int64_t questions = 0;
  int grid = 0, side = 0;
  double tolerance = 0;
  /// method -> answer type ("all" for every type) -> scores
  std::map<std::string, std::map<std::string, ExplanationScores>> scores;
};

/// Explains `limit` questions of a split of the checkpoint's data set with every method and
/// scores them (file header). Needs the split's COCO instances (the boxes) next to its VQA
/// files; a vqa or counting checkpoint (for counting, the named category is the answer's).
/// Throws std::invalid_argument for another task or a split without boxes.
ExplanationEvalResult evaluate_explanations(const ExplanationEvalOptions& options);

/// The result as a markdown table: one row per method and answer type.
std::string format_explanation_table(const ExplanationEvalResult& result);

/// The result as JSON (method -> type -> metrics).
std::string explanation_json(const ExplanationEvalResult& result);

}  // namespace xmodal::eval
