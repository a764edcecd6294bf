// Files that are either fully written or not there, and readers with bounds.
//
// Writing: a temporary file next to the target, fsync, rename over the target, fsync the folder.
// A crash at any moment leaves the old file or the new one, never a torn one. A path that is not
// a regular file is never replaced: a symlink is followed (its target is replaced, the link
// stays), a FIFO, device or socket is written through (`--output /dev/stdout` works), a folder
// is refused.
// Reading (core/files.h): regular files only, with a size limit.
#pragma once

#include <string>
#include <string_view>

#include "xmodal/core/files.h"

namespace xmodal::io {

using xmodal::check_regular_file;
using xmodal::FileError;
using xmodal::read_file;

/// Writes `data` to `path` as described above. Throws FileError naming `path`.
void write_file_atomic(const std::string& path, std::string_view data);

/// fsyncs the folder `dir`, so that the renames and creations in it are durable (best effort:
/// a folder that cannot be opened is left as it is).
void fsync_dir(const std::string& dir);

}  // namespace xmodal::io
