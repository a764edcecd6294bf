// Logging for the whole library. spdlog stays behind this header: callers use fmt-style
// format strings, the sinks (stderr console, optional file) live in logging.cpp.
//
//   log::info("[train] step {} loss {:.4f}", step, loss);
//
// The console sink writes to stderr so that stdout stays clean for machine-readable output
// (predict's JSON, --dump-config's YAML).
#pragma once

#include <fmt/format.h>

#include <string>
#include <string_view>
#include <utility>

namespace xmodal::log {

enum class Level { trace, debug, info, warn, error, off };

/// Parses "trace|debug|info|warn|error|off"; throws std::invalid_argument listing them.
Level parse_level(std::string_view name);
std::string_view level_name(Level level);

/// Sets the minimum level written by every sink.
void set_level(Level level);
Level level();

/// Also writes every message to `path` (appends; creates parent folders). Replaces an earlier
/// file sink, so a process logs to one run directory at a time.
void set_file(const std::string& path);
/// Stops writing to the file set by set_file (flushes it first).
void close_file();

/// set_file() for a scope (nothing for an empty path), close_file() at its end.
class ScopedFile {
 public:
  explicit ScopedFile(const std::string& path);
  ~ScopedFile();
  ScopedFile(const ScopedFile&) = delete;
  ScopedFile& operator=(const ScopedFile&) = delete;

 private:
  bool open_;
};

/// set_level() for a scope, when `set` (the previous level back at its end).
class ScopedLevel {
 public:
  ScopedLevel(bool set, Level level);
  ~ScopedLevel();
  ScopedLevel(const ScopedLevel&) = delete;
  ScopedLevel& operator=(const ScopedLevel&) = delete;

 private:
  bool set_;
  Level saved_;
};

/// Writes one message at `level` to every sink.
void write(Level level, std::string_view message);

template <class... Args>
void trace(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::trace, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void debug(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::debug, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void info(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::info, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void warn(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::warn, fmt::format(format, std::forward<Args>(args)...));
}
template <class... Args>
void error(fmt::format_string<Args...> format, Args&&... args) {
  write(Level::error, fmt::format(format, std::forward<Args>(args)...));
}

}  // namespace xmodal::log
