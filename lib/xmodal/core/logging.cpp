#include "xmodal/core/logging.h"

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <array>
#include <filesystem>
#include <mutex>
#include <stdexcept>

#include "xmodal/core/strings.h"

namespace xmodal::log {
namespace {

constexpr std::array<std::string_view, 6> kLevelNames = {"trace", "debug", "info",
                                                         "warn",  "error", "off"};

spdlog::level::level_enum to_spdlog(Level level) {
  switch (level) {
    case Level::trace:
      return spdlog::level::trace;
    case Level::debug:
      return spdlog::level::debug;
    case Level::info:
      return spdlog::level::info;
    case Level::warn:
      return spdlog::level::warn;
    case Level::error:
      return spdlog::level::err;
    case Level::off:
      return spdlog::level::off;
  }
  return spdlog::level::info;
}

// The run's log file keeps at least the info messages whatever the console shows: a run started
// with --log-level warn still leaves a complete train.log.
spdlog::level::level_enum file_level(Level level) {
  return to_spdlog(level < Level::info ? level : Level::info);
}

struct State {
  std::mutex mutex;
  std::shared_ptr<spdlog::logger> logger;
  spdlog::sink_ptr file_sink;
  Level level = Level::info;
};

State& state() {
  static State* s = [] {
    auto* st = new State;  // never destroyed: logging from static destructors stays safe
    auto console = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
    console->set_pattern("%^[%H:%M:%S.%e] %L%$ %v");
    st->logger = std::make_shared<spdlog::logger>("xmodal", console);
    st->logger->set_level(spdlog::level::trace);
    console->set_level(to_spdlog(st->level));
    return st;
  }();
  return *s;
}

}  // namespace

Level parse_level(std::string_view name) {
  for (size_t i = 0; i < kLevelNames.size(); ++i) {
    if (name == kLevelNames[i]) return static_cast<Level>(i);
  }
  throw std::invalid_argument("unknown log level '" + std::string(name) +
                              "' (expected one of: trace, debug, info, warn, error, off)");
}

std::string_view level_name(Level level) { return kLevelNames[static_cast<size_t>(level)]; }

void set_level(Level level) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.level = level;
  for (auto& sink : s.logger->sinks()) {
    sink->set_level(sink == s.file_sink ? file_level(level) : to_spdlog(level));
  }
}

Level level() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.level;
}

void set_file(const std::string& path) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  auto& sinks = s.logger->sinks();
  if (s.file_sink) {
    s.file_sink->flush();
    sinks.erase(std::remove(sinks.begin(), sinks.end(), s.file_sink), sinks.end());
    s.file_sink.reset();
  }
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path());
  try {
    s.file_sink = std::make_shared<spdlog::sinks::basic_file_sink_mt>(path, /*truncate=*/false);
  } catch (const spdlog::spdlog_ex& e) {
    throw std::runtime_error("cannot open log file " + path + ": " + e.what());
  }
  s.file_sink->set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  s.file_sink->set_level(file_level(s.level));
  sinks.push_back(s.file_sink);
}

void close_file() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  if (!s.file_sink) return;
  s.file_sink->flush();
  auto& sinks = s.logger->sinks();
  sinks.erase(std::remove(sinks.begin(), sinks.end(), s.file_sink), sinks.end());
  s.file_sink.reset();
}

void write(Level level, std::string_view message) {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);  // set_file may change the sink list concurrently
  s.logger->log(to_spdlog(level), "{}", message);
  // Every line reaches the file at once: a killed run keeps its log up to its last line.
  if (s.file_sink) s.file_sink->flush();
}

ScopedFile::ScopedFile(const std::string& path) : open_(!path.empty()) {
  if (open_) set_file(path);
}

ScopedFile::~ScopedFile() {
  if (open_) close_file();
}

ScopedLevel::ScopedLevel(bool set, Level level) : set_(set), saved_(xmodal::log::level()) {
  if (set_) set_level(level);
}

ScopedLevel::~ScopedLevel() {
  if (set_) set_level(saved_);
}

}  // namespace xmodal::log
