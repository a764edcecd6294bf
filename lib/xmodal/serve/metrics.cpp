#include "xmodal/serve/metrics.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>

namespace xmodal::serve {
namespace {

// Seconds: 0.5 ms .. 30 s, roughly x2.5 apart (request latency, queue and model time).
const std::vector<double> kSeconds = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                      0.25,   0.5,   1,      2.5,   5,    10,    30};
// Items per model execution.
const std::vector<double> kBatchSizes = {1, 2, 4, 8, 16, 32, 64, 128, 256};

std::string number(double v) {
  if (std::isinf(v)) return v > 0 ? "+Inf" : "-Inf";
  return fmt::format("{}", v);
}

void header(std::string& out, const char* name, const char* type, const char* help) {
  out += fmt::format("# HELP {} {}\n# TYPE {} {}\n", name, help, name, type);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(bounds_.size() + 1, 0) {}

void Histogram::observe(double value) {
  const auto at = std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  ++buckets_[static_cast<size_t>(at)];
  sum_ += value;
  ++count_;
}

void Histogram::write(std::string& out, const std::string& name, const std::string& labels) const {
  const std::string sep = labels.empty() ? "" : ",";
  uint64_t cumulative = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    cumulative += buckets_[i];
    const double le = i < bounds_.size() ? bounds_[i] : INFINITY;
    out +=
        fmt::format("{}_bucket{{{}{}le=\"{}\"}} {}\n", name, labels, sep, number(le), cumulative);
  }
  const std::string braces = labels.empty() ? "" : "{" + labels + "}";
  out +=
      fmt::format("{}_sum{} {}\n{}_count{} {}\n", name, braces, number(sum_), name, braces, count_);
}

Metrics::Metrics() : queue_(kSeconds), model_(kSeconds), batch_size_(kBatchSizes) {}

void Metrics::request(const std::string& endpoint, int status, double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++requests_[{endpoint, status}];
  if (seconds >= 0) latency_.try_emplace(endpoint, kSeconds).first->second.observe(seconds);
}

void Metrics::queue_wait(double seconds) {
  std::lock_guard<std::mutex> lock(mutex_);
  queue_.observe(seconds);
}

void Metrics::batch(double seconds, size_t items) {
  std::lock_guard<std::mutex> lock(mutex_);
  model_.observe(seconds);
  batch_size_.observe(static_cast<double>(items));
  ++batches_;
  inferences_ += items;
}

void Metrics::image_decoded() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++images_;
}

void Metrics::error(ErrorKind kind) {
  std::lock_guard<std::mutex> lock(mutex_);
  ++errors_[to_string(kind)];
}

uint64_t Metrics::batches() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return batches_;
}

uint64_t Metrics::inferences() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return inferences_;
}

std::string Metrics::render() const {
  const size_t depth = depth_ ? depth_() : 0;
  std::lock_guard<std::mutex> lock(mutex_);
  std::string out;
  header(out, "xmodal_requests_total", "counter", "HTTP requests answered, by endpoint and status");
  for (const auto& [key, n] : requests_) {
    out += fmt::format("xmodal_requests_total{{endpoint=\"{}\",code=\"{}\"}} {}\n", key.first,
                       key.second, n);
  }
  header(out, "xmodal_request_duration_seconds", "histogram",
         "Time from a request's arrival at its handler to its answer");
  for (const auto& [endpoint, h] : latency_) {
    h.write(out, "xmodal_request_duration_seconds", "endpoint=\"" + endpoint + "\"");
  }
  header(out, "xmodal_queue_duration_seconds", "histogram",
         "Time an item waited in the batching queue before its batch ran");
  queue_.write(out, "xmodal_queue_duration_seconds", "");
  header(out, "xmodal_model_duration_seconds", "histogram", "Wall time of one model execution");
  model_.write(out, "xmodal_model_duration_seconds", "");
  header(out, "xmodal_batch_size", "histogram", "Items per model execution");
  batch_size_.write(out, "xmodal_batch_size", "");
  header(out, "xmodal_inferences_total", "counter", "Items run through the model");
  out += fmt::format("xmodal_inferences_total {}\n", inferences_);
  header(out, "xmodal_executions_total", "counter",
         "Model executions (batches); inferences / executions = the average batch");
  out += fmt::format("xmodal_executions_total {}\n", batches_);
  header(out, "xmodal_queue_depth", "gauge", "Items waiting in the batching queue");
  out += fmt::format("xmodal_queue_depth {}\n", depth);
  header(out, "xmodal_images_decoded_total", "counter", "Images decoded from requests");
  out += fmt::format("xmodal_images_decoded_total {}\n", images_);
  header(out, "xmodal_errors_total", "counter", "Errors answered, by kind");
  for (const auto& [kind, n] : errors_) {
    out += fmt::format("xmodal_errors_total{{kind=\"{}\"}} {}\n", kind, n);
  }
  header(out, "xmodal_model_ready", "gauge", "1 once the model is loaded and serving");
  out += fmt::format("xmodal_model_ready {}\n", ready_ ? 1 : 0);
  return out;
}

}  // namespace xmodal::serve
