#include "xmodal/train/plot.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <map>
#include <sstream>
#include <stdexcept>
#include <vector>

#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"

namespace xmodal::train {
namespace {

using Series = std::vector<std::pair<double, double>>;  // (step, value)

const std::vector<cv::Scalar>& palette() {
  static const std::vector<cv::Scalar> colors = {{180, 119, 31}, {14, 127, 255},  {44, 160, 44},
                                                 {40, 39, 214},  {189, 103, 148}, {75, 86, 140}};
  return colors;  // BGR (matplotlib's tab10)
}

std::string tick_text(double v) {
  char text[32];
  if (std::abs(v) >= 1000 || (std::abs(v) < 0.01 && v != 0)) {
    std::snprintf(text, sizeof text, "%.2g", v);
  } else {
    std::snprintf(text, sizeof text, "%.3g", v);
  }
  return text;
}

// One panel: axes, ticks, a line per series and a legend.
void draw_panel(cv::Mat& canvas, const cv::Rect& area, const std::string& title,
                const std::map<std::string, Series>& series) {
  const cv::Scalar black(0, 0, 0), grey(200, 200, 200);
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const cv::Rect plot(area.x + 70, area.y + 30, area.width - 90, area.height - 70);
  cv::putText(canvas, title, {area.x + 70, area.y + 20}, font, 0.55, black, 1, cv::LINE_AA);
  double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
  for (const auto& [name, points] : series) {
    for (const auto& [x, y] : points) {
      if (!std::isfinite(y)) continue;
      x0 = std::min(x0, x);
      x1 = std::max(x1, x);
      y0 = std::min(y0, y);
      y1 = std::max(y1, y);
    }
  }
  cv::rectangle(canvas, plot, black, 1);
  if (!std::isfinite(x0)) {
    cv::putText(canvas, "no data", {plot.x + 10, plot.y + 30}, font, 0.5, black, 1, cv::LINE_AA);
    return;
  }
  if (x1 == x0) x1 = x0 + 1;
  // The value axis is computed on a quarter of each value: a loss of 1e308 next to -1e308 has a
  // range (and padding) that overflows doubles, which drew nothing at all
  y0 /= 4;
  y1 /= 4;
  if (y1 == y0) {
    y0 -= 0.5;
    y1 += 0.5;
  }
  const double pad = (y1 - y0) * 0.05;
  y0 -= pad;
  y1 += pad;
  const auto pixel = [](double v) { return static_cast<int>(std::clamp(v, -1e6, 1e6)); };
  const auto to_px = [&](double x, double y) {
    return cv::Point(plot.x + pixel((x - x0) / (x1 - x0) * plot.width),
                     plot.y + plot.height - pixel((y / 4 - y0) / (y1 - y0) * plot.height));
  };
  for (int i = 0; i <= 4; ++i) {
    const double quarter = y0 + (y1 - y0) * i / 4.0;
    const double y = std::clamp(quarter, -DBL_MAX / 4, DBL_MAX / 4) * 4;
    const cv::Point p = to_px(x0, y);
    cv::line(canvas, p, {plot.x + plot.width, p.y}, grey, 1);
    cv::putText(canvas, tick_text(y), {area.x + 5, p.y + 4}, font, 0.4, black, 1, cv::LINE_AA);
    const double x = x0 + (x1 - x0) * i / 4.0;
    const cv::Point q = to_px(x, y0 * 4);
    cv::putText(canvas, tick_text(std::round(x)), {q.x - 12, plot.y + plot.height + 16}, font, 0.4,
                black, 1, cv::LINE_AA);
  }
  cv::putText(canvas, "step", {plot.x + plot.width / 2 - 15, plot.y + plot.height + 34}, font, 0.45,
              black, 1, cv::LINE_AA);
  int index = 0, legend_y = plot.y + 16;
  for (const auto& [name, points] : series) {
    const cv::Scalar color = palette()[index++ % palette().size()];
    std::vector<cv::Point> line;
    for (const auto& [x, y] : points) {
      if (std::isfinite(y)) line.push_back(to_px(x, y));
    }
    if (line.size() == 1) cv::circle(canvas, line[0], 3, color, cv::FILLED, cv::LINE_AA);
    if (line.size() > 1) cv::polylines(canvas, line, false, color, 2, cv::LINE_AA);
    cv::line(canvas, {plot.x + plot.width - 170, legend_y - 4},
             {plot.x + plot.width - 150, legend_y - 4}, color, 2);
    cv::putText(canvas, name, {plot.x + plot.width - 145, legend_y}, font, 0.42, black, 1,
                cv::LINE_AA);
    legend_y += 16;
  }
}

}  // namespace

PlotSummary plot_run(const std::string& metrics_jsonl, const std::string& out_png) {
  std::istringstream in(io::read_file(metrics_jsonl));
  std::map<std::string, Series> loss, rates;
  PlotSummary summary;
  std::string line;
  while (std::getline(in, line)) {
    nlohmann::json record;
    try {
      record = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception&) {
      continue;
    }
    if (!record.is_object() || !record.contains("step") || !record["step"].is_number()) continue;
    const double step = record["step"].get<double>();
    const std::string event = record.value("event", "");
    if (event == "train" && record.contains("loss") && record["loss"].is_number()) {
      loss["train loss"].emplace_back(step, record["loss"].get<double>());
      ++summary.train_points;
    } else if (event == "eval" && record.contains("metrics") && record["metrics"].is_object()) {
      for (const auto& [name, value] : record["metrics"].items()) {
        if (!value.is_number()) continue;
        (name == "loss" ? loss["val loss"] : rates["val " + name])
            .emplace_back(step, value.get<double>());
      }
      ++summary.eval_points;
    }
  }
  if (summary.train_points == 0 && summary.eval_points == 0) {
    throw std::runtime_error(metrics_jsonl + ": no training or evaluation records to plot");
  }
  cv::Mat canvas(900, 1000, CV_8UC3, cv::Scalar(255, 255, 255));
  draw_panel(canvas, {0, 0, 1000, 440}, "loss", loss);
  draw_panel(canvas, {0, 450, 1000, 440}, "validation metrics", rates);
  cv::Mat rgb;
  cv::cvtColor(canvas, rgb, cv::COLOR_BGR2RGB);  // encode_png takes RGB
  io::write_file_atomic(out_png, io::encode_png(rgb));
  return summary;
}

}  // namespace xmodal::train
