// RUN_DIR/metrics.jsonl: one JSON object per line ("event": train | eval | end), appended and
// flushed at once, and the text forms of metrics and durations in train.log.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <cstdio>
#include <map>
#include <string>

namespace xmodal::train {

/// Appends records to metrics.jsonl.
class MetricsLog {
 public:
  /// An empty path writes nothing (the processes other than rank 0 of a distributed run).
  /// Throws std::runtime_error naming the file when it cannot be opened.
  explicit MetricsLog(const std::string& path);
  ~MetricsLog();
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  /// One line, flushed; throws std::runtime_error naming the file when the write fails.
  void write(const nlohmann::json& record);

 private:
  std::string path_;
  std::FILE* file_ = nullptr;
};

/// Keeps the records of metrics.jsonl up to `step` (a resumed run rewrites what came after its
/// checkpoint); malformed lines (a killed writer's partial last line) are dropped.
void truncate_metrics(const std::string& path, int64_t step);

/// Metrics as a JSON object, non-finite values as null.
nlohmann::json metrics_json(const std::map<std::string, double>& metrics);
/// "accuracy 0.9120 loss 0.3012".
std::string format_metrics(const std::map<std::string, double>& metrics);
/// "4m05s", "1h02m"; "?" for a negative or non-finite time.
std::string format_duration(double seconds);

}  // namespace xmodal::train
