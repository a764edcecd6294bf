// RUN_DIR/metrics.jsonl: one JSON object per line ("event": train | eval | end), appended and
// flushed at once; the same numbers as TensorBoard scalars in RUN_DIR/tb/ (train.tensorboard);
// and the text forms of metrics and durations in train.log.
//
// A record's numbers become scalars tagged EVENT/KEY at the record's step: train/loss, train/lr,
// train/grad_norm, train/samples_per_s, ..., eval/accuracy (the eval record's `metrics` object
// is left out of the tag), eval/seconds, end/train_s, end/image_cache/images. Strings, booleans
// and nulls (non-finite values) are not scalars.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace xmodal::io {
class EventWriter;
}

namespace xmodal::train {

/// Appends records to metrics.jsonl.
class MetricsLog {
 public:
  /// An empty path writes nothing (the processes other than rank 0 of a distributed run); an
  /// empty `tensorboard` file writes no event file. Throws std::runtime_error naming the file
  /// when one cannot be opened.
  explicit MetricsLog(const std::string& path, const std::string& tensorboard = "");
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  /// One line, flushed, and one event of its scalars; throws std::runtime_error naming the file
  /// when a write fails.
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
  std::unique_ptr<io::EventWriter> events_;
};

/// The TensorBoard scalars of a metrics.jsonl record (see the top of this file), in key order.
std::vector<std::pair<std::string, double>> record_scalars(const nlohmann::json& record);

/// RUN_DIR/tb/'s event file: the one a resumed run appends to (the last by name), else a new
/// name. Creates RUN_DIR/tb/.
std::string tensorboard_file(const std::string& run_dir);
/// Truncates every event file of RUN_DIR/tb/ to `step`, like truncate_metrics; `remove` deletes
/// them (an earlier attempt that never reached a checkpoint).
void truncate_tensorboard(const std::string& run_dir, int64_t step, bool remove = false);

/// Keeps the records of metrics.jsonl up to `step` (a resumed run rewrites what came after its
/// checkpoint) and drops its "end" record (the resumed run writes its own); malformed lines (a
/// killed writer's partial last line) are dropped.
void truncate_metrics(const std::string& path, int64_t step);

/// Metrics as a JSON object, non-finite values as null.
nlohmann::json metrics_json(const std::map<std::string, double>& metrics);
/// "accuracy 0.9120 loss 0.3012".
std::string format_metrics(const std::map<std::string, double>& metrics);
/// "4m05s", "1h02m"; "?" for a negative or non-finite time.
std::string format_duration(double seconds);

}  // namespace xmodal::train
