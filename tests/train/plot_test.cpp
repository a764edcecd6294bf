// `xmodal plot`: learning curves from metrics.jsonl as a PNG.
#include "xmodal/train/plot.h"

#include <gtest/gtest.h>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "../support/temp_dir.h"

namespace xmodal::train {
namespace {

using xmodal::testing::TempDir;

TEST(Plot, DrawsTrainAndEvalCurvesSkippingMalformedLines) {
  TempDir dir;
  std::string lines;
  for (int step = 10; step <= 100; step += 10) {
    lines += "{\"event\":\"train\",\"step\":" + std::to_string(step) +
             ",\"loss\":" + std::to_string(3.0 / step) + "}\n";
  }
  lines += "{\"event\":\"eval\",\"step\":50,\"metrics\":{\"accuracy\":0.4,\"loss\":1.1}}\n";
  lines += "{\"event\":\"eval\",\"step\":100,\"metrics\":{\"accuracy\":0.7,\"loss\":null}}\n";
  lines += "{\"event\":\"train\",\"st";  // a killed writer's last line
  const std::string metrics = dir.write("metrics.jsonl", lines);
  const std::string png = (dir.path() / "curves.png").string();
  const PlotSummary s = plot_run(metrics, png);
  EXPECT_EQ(s.train_points, 10);
  EXPECT_EQ(s.eval_points, 2);
  const cv::Mat image = cv::imread(png);
  ASSERT_FALSE(image.empty());
  EXPECT_GT(image.cols, 100);
  EXPECT_GT(image.rows, 100);
}

// Values near the largest double drew a blank panel (their range overflowed).
TEST(Plot, ExtremeValuesAreDrawn) {
  TempDir dir;
  const std::string metrics = dir.write("metrics.jsonl",
                                        "{\"event\":\"train\",\"step\":1,\"loss\":1e308}\n"
                                        "{\"event\":\"train\",\"step\":2,\"loss\":-1e308}\n"
                                        "{\"event\":\"train\",\"step\":3,\"loss\":1.7e308}\n");
  const std::string png = (dir.path() / "curves.png").string();
  plot_run(metrics, png);
  const cv::Mat image = cv::imread(png);
  ASSERT_FALSE(image.empty());
  // the curve's colour (tab10 blue, BGR 180 119 31) is on the chart
  cv::Mat blue;
  cv::inRange(image, cv::Scalar(170, 109, 21), cv::Scalar(190, 129, 41), blue);
  EXPECT_GT(cv::countNonZero(blue), 200);
}

TEST(Plot, NoRecordsOrNoFileIsAnError) {
  TempDir dir;
  EXPECT_THROW(plot_run(dir.write("metrics.jsonl", "not json\n"), (dir.path() / "a.png").string()),
               std::runtime_error);
  EXPECT_THROW(plot_run((dir.path() / "none.jsonl").string(), (dir.path() / "b.png").string()),
               std::runtime_error);
}

}  // namespace
}  // namespace xmodal::train
