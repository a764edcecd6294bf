// Reading with bounds: only regular files (after symlinks), of at most a given size; a folder,
// FIFO or device is refused with what it is, so a reader never blocks on a FIFO or reads
// /dev/zero without end. FileError names the path and the reason.
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>

namespace xmodal {

/// The largest file read_file() reads unless told otherwise: annotations of the full COCO / VQA
/// sets are a few hundred MB.
constexpr int64_t kMaxReadBytes = int64_t{4} << 30;

/// A file that cannot be read or written: what() is "cannot read PATH: REASON", reason() the
/// part after the path (for callers that name the file themselves).
class FileError : public std::runtime_error {
 public:
  FileError(const std::string& what, const std::string& path, const std::string& reason)
      : std::runtime_error("cannot " + what + " " + path + ": " + reason), reason_(reason) {}
  const std::string& reason() const { return reason_; }

 private:
  std::string reason_;
};

/// Checks that `path` is (or links to) a regular file of at most `max_bytes` and returns its
/// size. Throws FileError: "no such file", "it is a folder, not a file", "it is a FIFO, not a
/// regular file", the system's text ("Too many levels of symbolic links"), "N bytes is more
/// than the limit of M bytes for this file".
int64_t check_regular_file(const std::string& path, int64_t max_bytes = kMaxReadBytes);

/// Reads a whole regular file of at most `max_bytes` (checked as above, and again while
/// reading, should it grow). Throws FileError naming the path.
std::string read_file(const std::string& path, int64_t max_bytes = kMaxReadBytes);

/// What kind of file system object `mode` (st_mode) is, e.g. "a FIFO", "a character device".
std::string describe_file_type(unsigned mode);

}  // namespace xmodal
