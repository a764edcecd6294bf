#include "xmodal/train/metrics_log.h"

#include <fmt/format.h>

#include <cmath>
#include <filesystem>
#include <sstream>
#include <stdexcept>

#include "xmodal/io/atomic_file.h"

namespace xmodal::train {
namespace fs = std::filesystem;
using nlohmann::json;

MetricsLog::MetricsLog(const std::string& path)
    : path_(path), file_(path.empty() ? nullptr : std::fopen(path.c_str(), "a")) {
  if (!path.empty() && !file_) throw std::runtime_error("cannot open " + path + " for appending");
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
