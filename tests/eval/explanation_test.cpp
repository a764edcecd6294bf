// The measures of `xmodal explain --evaluate` on hand-made heat maps with known answers.
#include "xmodal/eval/explanation.h"

#include <gtest/gtest.h>

#include <numeric>

namespace xmodal::eval {
namespace {

// A 3x3 map over a 96-pixel image (32-pixel cells), all weight on `hot`, a little elsewhere.
std::vector<double> map_with(int hot) {
  std::vector<double> w(9, 0.01);
  w[static_cast<size_t>(hot)] = 0.9;
  return w;
}

TEST(Explanation, PointingGameHitsTheHottestPatchsCentre) {
  const double tol = pointing_tolerance(96);
  EXPECT_NEAR(tol, 15.0 * 96 / 224, 1e-12);
  // patch 4 is the middle cell: centre (48, 48)
  EXPECT_TRUE(pointing_hit(map_with(4), 3, 96, {{40, 40, 56, 56}}, tol));
  EXPECT_FALSE(pointing_hit(map_with(4), 3, 96, {{0, 0, 20, 20}}, tol));
  // 5 px short of the centre: inside the tolerance (6.4 px); 8 px: outside
  EXPECT_TRUE(pointing_hit(map_with(4), 3, 96, {{53, 40, 70, 56}}, tol));
  EXPECT_FALSE(pointing_hit(map_with(4), 3, 96, {{56, 40, 70, 56}}, tol));
  // any of several boxes; none: a miss
  EXPECT_TRUE(pointing_hit(map_with(0), 3, 96, {{60, 60, 90, 90}, {5, 5, 25, 25}}, tol));
  EXPECT_FALSE(pointing_hit(map_with(0), 3, 96, {}, tol));
  // a flat map points nowhere
  EXPECT_FALSE(pointing_hit(std::vector<double>(9, 1.0 / 9), 3, 96, {{0, 0, 96, 96}}, tol));
  EXPECT_THROW(pointing_hit(std::vector<double>(8, 0.1), 3, 96, {{0, 0, 9, 9}}, tol),
               std::invalid_argument);
}

TEST(Explanation, EnergyInBoxesAgainstTheirArea) {
  // the left half of the image
  const std::vector<PixelBox> left = {{0, 0, 48, 96}};
  EXPECT_DOUBLE_EQ(box_area_share(96, left), 0.5);
  // all weight on patch 0 (cell [0, 32) x [0, 32)), fully inside
  std::vector<double> w(9, 0.0);
  w[0] = 2.0;
  EXPECT_DOUBLE_EQ(energy_in_boxes(w, 3, 96, left), 1.0);
  // half on patch 1 (cell [32, 64): 16 of its 32 columns inside), half on patch 2 (outside)
  w = std::vector<double>(9, 0.0);
  w[1] = 1.0;
  w[2] = 1.0;
  EXPECT_DOUBLE_EQ(energy_in_boxes(w, 3, 96, left), 0.25);
  // a uniform map gets the area share; negative weights count as 0; no mass: 0
  EXPECT_DOUBLE_EQ(energy_in_boxes(std::vector<double>(9, 1.0), 3, 96, left), 0.5);
  w = std::vector<double>(9, -1.0);
  w[0] = 1.0;
  EXPECT_DOUBLE_EQ(energy_in_boxes(w, 3, 96, left), 1.0);
  EXPECT_DOUBLE_EQ(energy_in_boxes(std::vector<double>(9, 0.0), 3, 96, left), 0.0);
  // overlapping boxes count once
  EXPECT_DOUBLE_EQ(box_area_share(96, {{0, 0, 48, 96}, {0, 0, 48, 48}}), 0.5);
}

TEST(Explanation, CurvesAndTheirArea) {
  EXPECT_DOUBLE_EQ(curve_auc({0.7}), 0.7);
  EXPECT_DOUBLE_EQ(curve_auc({1, 1, 1}), 1.0);
  EXPECT_DOUBLE_EQ(curve_auc({1, 0}), 0.5);
  EXPECT_DOUBLE_EQ(curve_auc({1, 0, 0}), 0.25);
  EXPECT_THROW(curve_auc({}), std::invalid_argument);

  // A "model" that answers with probability 1 while patch 4 is visible, else 0.1.
  const auto scorer = [](const std::vector<std::vector<uint8_t>>& masks) {
    std::vector<double> p;
    for (const auto& m : masks) p.push_back(m.at(4) ? 0.1 : 1.0);
    return p;
  };
  const std::vector<double> w = map_with(4);
  const auto order = relevance_order(w);
  EXPECT_EQ(order[0], 4);
  const auto right = patch_curves(order, scorer);
  ASSERT_EQ(right.deletion.size(), 10u);
  EXPECT_EQ(right.deletion[0], 1.0);
  EXPECT_EQ(right.deletion[1], 0.1);  // the evidence goes first
  EXPECT_EQ(right.insertion[0], 0.1);
  EXPECT_EQ(right.insertion[1], 1.0);  // and comes back first
  // the evidence last: deletion stays high, insertion low
  std::vector<int> wrong(order.rbegin(), order.rend());
  const auto late = patch_curves(wrong, scorer);
  EXPECT_LT(curve_auc(right.deletion), curve_auc(late.deletion));
  EXPECT_GT(curve_auc(right.insertion), curve_auc(late.insertion));
  EXPECT_NEAR(curve_auc(right.deletion), (0.5 + 0.1 * 8 + 0.05) / 9, 1e-12);
  EXPECT_THROW(patch_curves({0, 0, 1}, scorer), std::invalid_argument);
}

TEST(Explanation, OrderOfRelevanceBreaksTiesByIndex) {
  EXPECT_EQ(relevance_order({0.2, 0.5, 0.2, 0.5}), (std::vector<int>{1, 3, 0, 2}));
}

TEST(Explanation, TheCategoryAQuestionNames) {
  const std::vector<std::string> names = {"t-shirt", "trousers", "shirt", "ankle boot", "dress"};
  const std::vector<std::string> plurals = {"t-shirts", "trousers", "shirts", "ankle boots",
                                            "dresses"};
  EXPECT_EQ(named_category("how many t-shirts are there?", names, plurals), 0);
  EXPECT_EQ(named_category("is there a shirt?", names, plurals), 2);
  EXPECT_EQ(named_category("How many Ankle Boots are there?", names, plurals), 3);
  EXPECT_EQ(named_category("how many trousers are there?", names, plurals), 1);
  EXPECT_EQ(named_category("what is the leftmost item?", names, plurals), -1);
  EXPECT_EQ(named_category("is there a shirtdress?", names, plurals), -1);
  // without plurals: name + s / es
  EXPECT_EQ(named_category("how many dresses are there?", names), 4);
  EXPECT_EQ(named_category("how many dogs are there?", {"cat", "dog"}), 1);
}

TEST(Explanation, MetricsAreMeansOfTheSums) {
  ExplanationScores a;
  a.pointed = 2;
  a.hits = 1;
  a.energy = 1.2;
  a.area = 0.4;
  a.curves = 4;
  a.deletion = 1.0;
  a.insertion = 2.0;
  a.deletion_random = 1.6;
  a.insertion_random = 1.2;
  ExplanationScores b;
  b.add(a);
  b.add(a);
  const auto m = explanation_metrics(b);
  EXPECT_DOUBLE_EQ(m.at("pointing"), 0.5);
  EXPECT_DOUBLE_EQ(m.at("energy"), 0.6);
  EXPECT_DOUBLE_EQ(m.at("area"), 0.2);
  EXPECT_DOUBLE_EQ(m.at("deletion"), 0.25);
  EXPECT_DOUBLE_EQ(m.at("insertion_random"), 0.3);
  EXPECT_EQ(explanation_metrics(ExplanationScores{}).count("pointing"), 0u);
}

}  // namespace
}  // namespace xmodal::eval
