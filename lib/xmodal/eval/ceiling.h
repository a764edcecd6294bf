// The ceiling that recognising single articles sets on the scenes' VQA accuracy, measured: an
// image classifier (a task: classify checkpoint, e.g. the quickstart's Fashion-MNIST encoder)
// labels every article of a test scene, cut out at its ground-truth box (the COCO instances),
// and each question is answered by exact reasoning over those labels and the boxes' positions
// (the scenes' three templates: "how many X are there?", "is there a X?", "what is the
// leftmost / rightmost item?"). The VQA accuracy of those answers, per answer type, is what
// a model with that classifier's perception and perfect reasoning would reach.
//
// Beside it, the perception of a trained scenes VQA model itself (--model): its answers to "is
// there a X?" and "how many X are there?" for every category of every scene, against the truth,
// scored as the classifier's labels are scored. A model below its own encoder there has lost
// perception in transfer; a model at or above it and still below the ceiling is limited by its
// reasoning (the leftmost / rightmost questions: locating).
//
//   xmodal ceiling --classifier CKPT [--model VQA_CKPT] [--root data/fashion-scenes] [--split test]
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xmodal/data/coco.h"
#include "xmodal/data/vqa.h"

namespace xmodal::eval {

/// An article of a scene as reasoning sees it: its category (the scenes' contiguous index) and
/// the centre of its box.
struct Article {
  int category = 0;
  float cx = 0, cy = 0;
};

/// The answer exact reasoning gives to a scenes question about `articles` (in the instances
/// file's order: ties of position go to the first), normalised as the scenes' answers are; ""
/// for a question outside the three templates.
std::string scenes_answer(const std::string& question, const std::vector<Article>& articles);

/// How well a recogniser tells what a scene holds: for every (scene, category) pair of a split,
/// whether the category is there and how many of it, against the truth.
struct PerceptionScores {
  int64_t pairs = 0;       ///< (scene, category) pairs scored
  double presence = 0;     ///< share of pairs whose presence is right
  double recall = 0;       ///< "there" where the category is there
  double specificity = 0;  ///< "not there" where it is not
  double count = 0;        ///< share of pairs whose count is right
};

/// Scores a recogniser's `present[i][c]` (1 = there, 0 = not, -1 = no answer: wrong) and
/// `counts[i][c]` (-1 = no answer) for category c of coco.images[i] against the instances.
/// Throws std::invalid_argument when the shapes do not match.
PerceptionScores score_perception(const data::CocoSet& coco,
                                  const std::vector<std::vector<int>>& present,
                                  const std::vector<std::vector<int>>& counts);

/// A scenes VQA checkpoint's own perception: its top answer to "is there a X?" and "how many X
/// are there?" (data/scenes.h's wording) for every category of every image of `coco`. Throws
/// OptionError for a checkpoint of another task, std::invalid_argument when coco's categories
/// are not the scenes'.
PerceptionScores model_perception(const std::string& checkpoint, const data::CocoSet& coco,
                                  int batch_size);

struct CeilingResult {
  std::map<std::string, double> metrics;  ///< accuracy, accuracy_<type> (tasks::vqa_metrics)
  int64_t questions = 0;
  int64_t unanswerable = 0;  ///< questions outside the templates (counted as wrong)
  int64_t articles = 0;
  double article_accuracy = 0;                  ///< share of articles labelled right
  std::vector<std::string> categories;          ///< the scenes' category names
  std::vector<std::vector<int64_t>> confusion;  ///< [true category][predicted category]
  std::map<std::string, double> prior;          ///< text_prior(), when measured
  /// The classifier's perception from its labels (at the true boxes), when it was measured.
  std::optional<PerceptionScores> classifier_perception;
  /// The VQA model's own perception (CeilingOptions::model), when it was measured.
  std::optional<PerceptionScores> model_perception;
};

/// The ceiling for given labels: `predicted[i][j]` is the category given to object j of
/// coco.images[i] (the ground truth's own labels give 100%). Throws std::invalid_argument when
/// the shapes do not match or a question's image is not in `coco`.
CeilingResult ceiling_from_labels(const data::CocoSet& coco, const data::VqaSet& vqa,
                                  const std::vector<std::vector<int>>& predicted);

/// The text-only prior: each question answered with its most frequent answer in `train` (a
/// question text never seen there: the most frequent answer of its answer type). The best a
/// model that reads the question but not the image can do on average. accuracy, accuracy_<type>.
std::map<std::string, double> text_prior(const data::VqaSet& train, const data::VqaSet& vqa);

struct CeilingOptions {
  std::string classifier;  ///< a task: classify checkpoint or run directory ("" = none)
  std::string model;       ///< a scenes VQA checkpoint whose own perception to measure ("" = none)
  std::string root = "data/fashion-scenes";
  std::string split = "test";
  std::string prior_split = "train";  ///< where text_prior() counts answers; "" = no prior
  int batch_size = 256;
};

/// Labels every article of the split with the classifier (its eval preprocessing, on the crop
/// of the box) and measures the ceiling and the classifier's perception; with a model, the
/// model's perception too (at least one of the two is needed). Throws OptionError for a
/// checkpoint of the wrong task or a classifier whose classes do not name the scenes'
/// categories, std::runtime_error for unreadable data.
CeilingResult measure_ceiling(const CeilingOptions& options);

/// The result as a table: accuracy per answer type, the article accuracy and each category's
/// recall with its most frequent confusion.
std::string format_ceiling(const CeilingResult& result);

}  // namespace xmodal::eval
