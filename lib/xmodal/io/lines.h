// Bounded line reading for JSONL inputs: a regular file, a pipe or FIFO, or stdin ("-"). A line
// longer than the limit (/dev/zero has no newline) and input past the total limit are errors
// naming the source and line, never unbounded memory; folders and devices are refused.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <string>

namespace xmodal::io {

class LineReader {
 public:
  static constexpr int64_t kMaxLineBytes = int64_t{1} << 20;
  static constexpr int64_t kMaxTotalBytes = int64_t{1} << 32;

  /// `path` "-" reads stdin. Throws FileError for a missing file, a folder or a device.
  explicit LineReader(const std::string& path, int64_t max_line_bytes = kMaxLineBytes,
                      int64_t max_total_bytes = kMaxTotalBytes);

  /// The next line without its "\n" (and "\r"), false at the end. Throws FileError
  /// ("SOURCE:LINE: ...") for a line over the limit, input over the total or a read error.
  bool next(std::string& line);

  int64_t line_number() const { return number_; }
  /// "stdin" or the path.
  const std::string& source() const { return source_; }

 private:
  std::string source_;
  std::unique_ptr<std::ifstream> file_;
  std::streambuf* in_ = nullptr;
  int64_t max_line_, max_total_, total_ = 0, number_ = 0;
};

}  // namespace xmodal::io
