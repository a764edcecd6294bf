// `xmodal plot RUN_DIR`: the learning curves of a run as a PNG, drawn with OpenCV from
// metrics.jsonl (training loss over steps; validation metrics over steps).
#pragma once

#include <string>

namespace xmodal::train {

struct PlotSummary {
  int train_points = 0;
  int eval_points = 0;
};

/// Reads `metrics_jsonl` and writes a two-panel PNG to `out_png` (atomically). Malformed lines
/// are skipped. Throws std::runtime_error when the file cannot be read or holds no records.
PlotSummary plot_run(const std::string& metrics_jsonl, const std::string& out_png);

}  // namespace xmodal::train
