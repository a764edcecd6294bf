#include "xmodal/train/run_folder.h"

#include <fcntl.h>
#include <sys/file.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "xmodal/core/strings.h"

namespace xmodal::train {
namespace fs = std::filesystem;
namespace {

constexpr const char* kResolvedConfig = "config.resolved.yaml";

// What a folder holds, for messages: at most five names, folders marked with '/'.
std::string listing(const std::vector<fs::directory_entry>& entries) {
  std::vector<std::string> names;
  for (const auto& e : entries) {
    std::error_code ec;
    names.push_back(e.path().filename().string() + (e.is_directory(ec) ? "/" : ""));
  }
  std::sort(names.begin(), names.end());
  const size_t shown = std::min<size_t>(names.size(), 5);
  std::string text = join(std::vector<std::string>(names.begin(), names.begin() + shown), ", ");
  if (names.size() > shown) text += ", ... (" + std::to_string(names.size()) + " entries)";
  return text;
}

bool same_file(const fs::path& a, const std::string& b) {
  if (b.empty()) return false;
  std::error_code ec;
  return fs::equivalent(a, b, ec) && !ec;
}

}  // namespace

RunFolderLock::RunFolderLock(const std::string& run_dir) {
  const std::string path = (fs::path(run_dir) / kRunLockFile).string();
  fd_ = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
  if (fd_ < 0) {
    throw std::runtime_error("run directory " + run_dir + ": cannot create " + kRunLockFile + ": " +
                             std::strerror(errno));
  }
  if (::flock(fd_, LOCK_EX | LOCK_NB) != 0) {
    const int error = errno;
    char text[32] = {0};
    const ssize_t n = ::pread(fd_, text, sizeof text - 1, 0);
    ::close(fd_);
    fd_ = -1;
    if (error == EWOULDBLOCK) {
      const std::string pid = n > 0 ? trim(std::string(text, static_cast<size_t>(n))) : "?";
      throw std::runtime_error("run directory " + run_dir +
                               " is in use by another xmodal train (PID " + pid +
                               "); wait for it to end, or choose another --run-dir");
    }
    throw std::runtime_error("run directory " + run_dir + ": cannot lock " + kRunLockFile + ": " +
                             std::strerror(error));
  }
  const std::string pid = std::to_string(::getpid()) + "\n";
  if (::ftruncate(fd_, 0) != 0 || ::pwrite(fd_, pid.data(), pid.size(), 0) < 0) {
    // The lock holds without the PID; only the message of a second run would lack it.
  }
}

RunFolderLock::~RunFolderLock() {
  if (fd_ >= 0) ::close(fd_);  // releases the flock
}

RunFolderClaim check_run_folder(const std::string& run_dir, const std::string& config_file,
                                bool resume) {
  if (run_dir.empty()) throw std::invalid_argument("run.dir is empty: name a run folder");
  const fs::path dir(run_dir);
  RunFolderClaim claim;
  claim.config_path = (dir / "config.yaml").string();
  std::error_code ec;
  const auto status = fs::status(dir, ec);
  if (fs::exists(status) && !fs::is_directory(status)) {
    throw std::invalid_argument("run directory " + run_dir + " exists and is not a folder");
  }
  if (!fs::exists(status)) {
    if (resume) {
      throw std::runtime_error("run directory " + run_dir +
                               ": no complete checkpoint to resume (no such folder)");
    }
    fs::create_directories(dir, ec);
    if (ec) {
      throw std::runtime_error("run directory " + run_dir + ": cannot create: " + ec.message());
    }
    return claim;
  }
  std::vector<fs::directory_entry> entries;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    entries.push_back(*it);
  }
  if (ec) throw std::runtime_error("run directory " + run_dir + ": cannot list: " + ec.message());
  const bool marked = fs::exists(dir / kRunLockFile, ec);
  // A run that left the user's config.yaml alone wrote config.resolved.yaml; a resume (which
  // names no config file) must leave it alone too.
  claim.users_config =
      same_file(dir / "config.yaml", config_file) || fs::exists(dir / kResolvedConfig, ec);
  if (claim.users_config) claim.config_path = (dir / kResolvedConfig).string();
  if (resume || entries.empty()) return claim;
  // Checkpoints (and a run made before the lock file existed) are judged by the trainer, which
  // names the step and the way to resume.
  if (fs::exists(dir / "checkpoints", ec) || fs::exists(dir / "last", ec)) return claim;
  if (marked) {
    claim.stale_attempt = true;
    return claim;
  }
  if (entries.size() == 1 && claim.users_config) return claim;
  throw std::invalid_argument(
      "run directory " + run_dir + " is not empty and was not made by xmodal (it holds " +
      listing(entries) + "); train into a new or empty folder" +
      (claim.users_config ? "" : ", or one that holds only the config being run"));
}

std::string saved_run_config(const std::string& run_dir) {
  const fs::path resolved = fs::path(run_dir) / kResolvedConfig;
  std::error_code ec;
  return (fs::exists(resolved, ec) ? resolved : fs::path(run_dir) / "config.yaml").string();
}

}  // namespace xmodal::train
