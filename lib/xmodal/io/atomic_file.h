// Files that are either fully written or not there: write a temporary file next to the target,
// fsync it, rename it over the target, fsync the folder. A crash at any moment leaves the old
// file or the new one, never a torn one.
#pragma once

#include <string>
#include <string_view>

namespace xmodal::io {

/// Atomically replaces `path` with `data`. Throws std::runtime_error naming the path.
void write_file_atomic(const std::string& path, std::string_view data);

/// Reads a whole file. Throws std::runtime_error naming the path and the OS error.
std::string read_file(const std::string& path);

}  // namespace xmodal::io
