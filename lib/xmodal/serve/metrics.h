// The server's counters and histograms, written in the Prometheus text exposition format
// (version 0.0.4) for GET /metrics. Thread-safe: HTTP threads and the model thread record into
// one Metrics.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "xmodal/serve/errors.h"

namespace xmodal::serve {

/// A cumulative histogram with fixed upper bounds (Prometheus' `le` buckets; +Inf implied).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void observe(double value);
  /// The _bucket, _sum and _count lines of `name` with `labels` (`a="x",b="y"` or "").
  void write(std::string& out, const std::string& name, const std::string& labels) const;
  uint64_t count() const { return count_; }

 private:
  std::vector<double> bounds_;
  std::vector<uint64_t> buckets_;  // per bound, not cumulative; the last one is +Inf
  double sum_ = 0;
  uint64_t count_ = 0;
};

class Metrics {
 public:
  Metrics();

  /// One answered request: `endpoint` is a known path or "other"; `seconds` < 0 when the
  /// request never reached a handler.
  void request(const std::string& endpoint, int status, double seconds);
  /// Time items waited in the queue before their batch ran (one observation per item).
  void queue_wait(double seconds);
  /// One model execution: its wall time and the items it ran.
  void batch(double seconds, size_t items);
  void image_decoded();
  /// An error by kind (serve/errors.h).
  void error(ErrorKind kind);
  void set_ready(bool ready) { ready_ = ready; }
  /// The queue depth, read when /metrics is scraped.
  void set_queue_depth(std::function<size_t()> depth) { depth_ = std::move(depth); }

  uint64_t batches() const;
  uint64_t inferences() const;
  /// The Prometheus text of every metric.
  std::string render() const;

 private:
  mutable std::mutex mutex_;
  std::map<std::pair<std::string, int>, uint64_t> requests_;
  std::map<std::string, Histogram> latency_;  // by endpoint
  Histogram queue_, model_, batch_size_;
  std::map<std::string, uint64_t> errors_;
  uint64_t images_ = 0, batches_ = 0, inferences_ = 0;
  std::atomic<bool> ready_{false};
  std::function<size_t()> depth_;
};

}  // namespace xmodal::serve
