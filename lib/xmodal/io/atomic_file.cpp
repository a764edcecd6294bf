#include "xmodal/io/atomic_file.h"

#include <fcntl.h>
#include <limits.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <random>

namespace xmodal::io {
namespace fs = std::filesystem;
namespace {

[[noreturn]] void fail(const std::string& what, const std::string& path, int error) {
  throw FileError(what, path, std::strerror(error));
}

// Writes all of `data` to `fd`, retrying short writes and EINTR; returns 0 or the errno.
int write_all(int fd, std::string_view data) {
  size_t done = 0;
  while (done < data.size()) {
    const ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    done += static_cast<size_t>(n);
  }
  return 0;
}

// Writes into an existing FIFO, device or socket (or a /dev or /proc alias of an open file)
// instead of replacing it. `append` keeps what is there (a file behind /dev/stdout).
void write_through(const std::string& path, std::string_view data, bool append) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_NOCTTY | O_CLOEXEC | (append ? O_APPEND : 0));
  if (fd < 0) fail("write", path, errno);
  const int error = write_all(fd, data);
  if (error != 0) {
    ::close(fd);
    fail("write", path, error);
  }
  if (::close(fd) != 0 && errno != EINTR) fail("write", path, errno);
}

// The file a symlink chain ends at (which may not exist yet: `ln -s new.json out.json`).
std::string final_target(const std::string& path) {
  std::string current = path;
  for (int hops = 0; hops < 40; ++hops) {
    struct stat st;
    if (::lstat(current.c_str(), &st) != 0 || !S_ISLNK(st.st_mode)) return current;
    std::error_code ec;
    const fs::path link = fs::read_symlink(current, ec);
    if (ec) throw FileError("write", path, ec.message());
    current = (link.is_absolute() ? link : fs::path(current).parent_path() / link).string();
  }
  fail("write", path, ELOOP);
}

// The atomic replacement of a regular (or not yet existing) file.
void replace_file(const std::string& shown, const std::string& path, std::string_view data) {
  const fs::path target(path);
  const fs::path dir = target.has_parent_path() ? target.parent_path() : fs::path(".");
  struct stat old;
  const bool existed = ::stat(path.c_str(), &old) == 0;
  std::random_device rd;
  const std::string tmp =
      (dir / ("." + target.filename().string() + ".tmp-" + std::to_string(rd()))).string();
  const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (fd < 0) fail("write", shown, errno);  // the user's path, not the temporary name
  const auto give_up = [&](int error) {
    ::close(fd);
    ::unlink(tmp.c_str());
    fail("write", shown, error);
  };
  if (const int error = write_all(fd, data); error != 0) give_up(error);
  // A file that was there keeps its permissions (a 0600 results file stays private).
  if (existed && ::fchmod(fd, old.st_mode & 07777) != 0) give_up(errno);
  if (::fsync(fd) != 0) give_up(errno);
  if (::close(fd) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    fail("write", shown, error);
  }
  if (::rename(tmp.c_str(), path.c_str()) != 0) {
    const int error = errno;
    ::unlink(tmp.c_str());
    fail("write", shown, error);
  }
  fsync_dir(dir);  // make the rename itself durable
}

bool under_dev_or_proc(const std::string& path) {
  std::error_code ec;
  const std::string abs = fs::absolute(path, ec).lexically_normal().string();
  return abs.rfind("/dev/", 0) == 0 || abs.rfind("/proc/", 0) == 0;
}

}  // namespace

void write_file_atomic(const std::string& path, std::string_view data) {
  if (path.empty()) throw FileError("write", "''", "empty path");
  struct stat st;
  const bool exists = ::stat(path.c_str(), &st) == 0;
  if (!exists && errno == ELOOP) fail("write", path, ELOOP);
  if (exists && S_ISDIR(st.st_mode)) throw FileError("write", path, "it is a folder");
  if (exists && !S_ISREG(st.st_mode)) return write_through(path, data, /*append=*/false);
  // /dev/stdout, /proc/self/fd/1, ... naming a regular file: the file an open descriptor
  // writes; replacing it would detach it from that descriptor.
  if (exists && under_dev_or_proc(path)) return write_through(path, data, /*append=*/true);
  replace_file(path, final_target(path), data);
}

void fsync_dir(const std::string& dir) {
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

}  // namespace xmodal::io
