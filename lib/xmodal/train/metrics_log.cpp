#include "xmodal/train/metrics_log.h"

#include <fmt/format.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "xmodal/core/logging.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/tensorboard.h"

namespace xmodal::train {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

void add_scalars(const json& value, const std::string& tag,
                 std::vector<std::pair<std::string, double>>& out) {
  if (value.is_object()) {
    for (const auto& [key, inner] : value.items()) add_scalars(inner, tag + "/" + key, out);
  } else if (value.is_number()) {
    out.emplace_back(tag, value.get<double>());
  }
}

// The event files of RUN_DIR/tb/, sorted by name.
std::vector<fs::path> event_files(const std::string& run_dir) {
  std::vector<fs::path> files;
  std::error_code ec;
  for (const auto& entry : fs::directory_iterator(fs::path(run_dir) / "tb", ec)) {
    if (entry.path().filename().string().find("tfevents") != std::string::npos &&
        entry.is_regular_file(ec)) {
      files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

}  // namespace

MetricsLog::MetricsLog(const std::string& path, const std::string& tensorboard)
    : path_(path), file_(path.empty() ? nullptr : std::fopen(path.c_str(), "a")) {
  if (!path.empty() && !file_) throw std::runtime_error("cannot open " + path + " for appending");
  if (!path.empty() && !tensorboard.empty()) {
    events_ = std::make_unique<io::EventWriter>(tensorboard);
  }
}

MetricsLog::~MetricsLog() {
  if (file_) std::fclose(file_);
}

void MetricsLog::write(const json& record) {
  if (!file_) return;
  const std::string line = record.dump() + "\n";
  if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
    throw std::runtime_error("cannot write " + path_);
  }
  if (!events_) return;
  io::ScalarEvent event;  // wall time: now
  const auto step = record.find("step");
  if (step != record.end() && step->is_number_integer()) event.step = step->get<int64_t>();
  for (const auto& [tag, value] : record_scalars(record)) {
    event.values.emplace_back(tag, static_cast<float>(value));
  }
  if (!event.values.empty()) events_->write(event);
}

std::vector<std::pair<std::string, double>> record_scalars(const json& record) {
  std::vector<std::pair<std::string, double>> out;
  if (!record.is_object()) return out;
  const auto event = record.find("event");
  const std::string prefix =
      event != record.end() && event->is_string() ? event->get<std::string>() : "record";
  for (const auto& [key, value] : record.items()) {
    if (key == "step" || key == "event") continue;
    add_scalars(value, key == "metrics" ? prefix : prefix + "/" + key, out);
  }
  return out;
}

std::string tensorboard_file(const std::string& run_dir) {
  const auto files = event_files(run_dir);
  if (!files.empty()) return files.back().string();
  const fs::path dir = fs::path(run_dir) / "tb";
  std::error_code ec;
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("cannot create " + dir.string() + ": " + ec.message());
  return (dir / io::event_file_name()).string();
}

void truncate_tensorboard(const std::string& run_dir, int64_t step, bool remove) {
  for (const auto& file : event_files(run_dir)) {
    if (remove) {
      std::error_code ec;
      fs::remove(file, ec);
    } else {
      const std::string lost = io::truncate_events(file.string(), step, "end/");
      if (!lost.empty()) log::warn("[resume] TensorBoard history: {}", lost);
    }
  }
}

void truncate_metrics(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  std::istringstream in(io::read_file(path));
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const json record = json::parse(line);
      if (!record.is_object()) continue;
      // Only an integer step is compared: get<int64_t>() of a double such as 1e79 is undefined.
      const auto at = record.find("step");
      // A run that goes on is not over: the "end" record of the run it resumes goes too.
      const auto event = record.find("event");
      if (event != record.end() && *event == "end") continue;
      if (at == record.end() || (at->is_number_integer() && at->get<int64_t>() <= step)) {
        kept += line + "\n";
      }
    } catch (const json::exception&) {
      // A partial last line from a killed writer.
    }
  }
  io::write_file_atomic(path, kept);
}

json metrics_json(const std::map<std::string, double>& metrics) {
  json j = json::object();
  for (const auto& [k, v] : metrics) j[k] = std::isfinite(v) ? json(v) : json(nullptr);
  return j;
}

std::string format_metrics(const std::map<std::string, double>& metrics) {
  std::string text;
  for (const auto& [k, v] : metrics) {
    if (!text.empty()) text += " ";
    text += fmt::format("{} {:.4f}", k, v);
  }
  return text;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  if (s >= 3600) return fmt::format("{}h{:02}m", s / 3600, s / 60 % 60);
  return fmt::format("{}m{:02}s", s / 60, s % 60);
}

}  // namespace xmodal::train
