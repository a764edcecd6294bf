#include "xmodal/core/files.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace xmodal {
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int error) {
  throw FileError(what, path, std::strerror(error));
}

}  // namespace

std::string describe_file_type(unsigned mode) {
  if (S_ISDIR(mode)) return "a folder";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  if (S_ISLNK(mode)) return "a symbolic link";
  if (S_ISREG(mode)) return "a regular file";
  return "not a regular file";
}

int64_t check_regular_file(const std::string& path, int64_t max_bytes) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    if (errno == ENOENT) throw FileError("read", path, "no such file");
    fail("read", path, errno);
  }
  if (S_ISDIR(st.st_mode)) throw FileError("read", path, "it is a folder, not a file");
  if (!S_ISREG(st.st_mode)) {
    throw FileError("read", path,
                    "it is " + describe_file_type(st.st_mode) + ", not a regular file");
  }
  if (st.st_size > max_bytes) {
    throw FileError("read", path,
                    std::to_string(st.st_size) + " bytes is more than the limit of " +
                        std::to_string(max_bytes) + " bytes for this file");
  }
  return static_cast<int64_t>(st.st_size);
}

std::string read_file(const std::string& path, int64_t max_bytes) {
  const int64_t size = check_regular_file(path, max_bytes);
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) fail("read", path, errno);
  std::string text;
  text.reserve(static_cast<size_t>(size));
  char buffer[1 << 16];
  for (;;) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EINTR) continue;
      const int error = errno;
      ::close(fd);
      fail("read", path, error);
    }
    if (static_cast<int64_t>(text.size()) + n > max_bytes) {
      ::close(fd);
      throw FileError(
          "read", path,
          "it grew past the limit of " + std::to_string(max_bytes) + " bytes while being read");
    }
    text.append(buffer, static_cast<size_t>(n));
  }
  ::close(fd);
  return text;
}

}  // namespace xmodal
