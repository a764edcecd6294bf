#include "xmodal/io/lines.h"

#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <iostream>

#include "xmodal/io/atomic_file.h"

namespace xmodal::io {

LineReader::LineReader(const std::string& path, int64_t max_line_bytes, int64_t max_total_bytes)
    : source_(path == "-" ? "stdin" : path),
      max_line_(max_line_bytes),
      max_total_(max_total_bytes) {
  if (path == "-") {
    in_ = std::cin.rdbuf();
    return;
  }
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    throw FileError("read", path, errno == ENOENT ? "no such file" : std::strerror(errno));
  }
  if (!S_ISREG(st.st_mode) && !S_ISFIFO(st.st_mode)) {
    throw FileError("read", path,
                    "it is " + describe_file_type(st.st_mode) + ", not a file or a pipe");
  }
  file_ = std::make_unique<std::ifstream>(path, std::ios::binary);
  if (!*file_) throw FileError("read", path, std::strerror(errno));
  in_ = file_->rdbuf();
}

bool LineReader::next(std::string& line) {
  line.clear();
  using traits = std::char_traits<char>;
  bool any = false;
  for (;;) {
    const auto c = in_->sbumpc();
    if (traits::eq_int_type(c, traits::eof())) break;
    any = true;
    if (++total_ > max_total_) {
      throw FileError("read", source_,
                      "more than " + std::to_string(max_total_) + " bytes of input (at line " +
                          std::to_string(number_ + 1) + ")");
    }
    if (c == '\n') break;
    if (static_cast<int64_t>(line.size()) >= max_line_) {
      throw FileError("read", source_,
                      "line " + std::to_string(number_ + 1) + " is longer than " +
                          std::to_string(max_line_) + " bytes");
    }
    line.push_back(traits::to_char_type(c));
  }
  if (file_ && file_->bad()) throw FileError("read", source_, std::strerror(errno));
  if (!any) return false;
  ++number_;
  if (!line.empty() && line.back() == '\r') line.pop_back();
  return true;
}

}  // namespace xmodal::io
