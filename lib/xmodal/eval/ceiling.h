// The ceiling that recognising single articles sets on the scenes' VQA accuracy, measured: an
// image classifier (a task: classify checkpoint, e.g. the quickstart's Fashion-MNIST encoder)
// labels every article of a test scene, cut out at its ground-truth box (the COCO instances),
// and each question is answered by exact reasoning over those labels and the boxes' positions
// (the scenes' three templates: "how many X are there?", "is there a X?", "what is the
// leftmost / rightmost item?"). The VQA accuracy of those answers, per answer type, is what
// a model with that classifier's perception and perfect reasoning would reach.
//
//   xmodal data ceiling --classifier CKPT [--root data/fashion-scenes] [--split test]
#pragma once

#include <cstdint>
#include <map>
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

struct CeilingResult {
  std::map<std::string, double> metrics;  ///< accuracy, accuracy_<type> (tasks::vqa_metrics)
  int64_t questions = 0;
  int64_t unanswerable = 0;  ///< questions outside the templates (counted as wrong)
  int64_t articles = 0;
  double article_accuracy = 0;                  ///< share of articles labelled right
  std::vector<std::string> categories;          ///< the scenes' category names
  std::vector<std::vector<int64_t>> confusion;  ///< [true category][predicted category]
  std::map<std::string, double> prior;          ///< text_prior(), when measured
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
  std::string classifier;  ///< a task: classify checkpoint or run directory
  std::string root = "data/fashion-scenes";
  std::string split = "test";
  std::string prior_split = "train";  ///< where text_prior() counts answers; "" = no prior
  int batch_size = 256;
};

/// Labels every article of the split with the classifier (its eval preprocessing, on the crop
/// of the box) and measures the ceiling. Throws std::invalid_argument for a classifier of
/// another task or one whose classes do not name the scenes' categories, std::runtime_error for
/// unreadable data.
CeilingResult measure_ceiling(const CeilingOptions& options);

/// The result as a table: accuracy per answer type, the article accuracy and each category's
/// recall with its most frequent confusion.
std::string format_ceiling(const CeilingResult& result);

}  // namespace xmodal::eval
