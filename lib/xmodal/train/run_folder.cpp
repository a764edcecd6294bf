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

#include "xmodal/core/logging.h"
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

ClaimedRun claim_run_folder(const std::string& run_dir, const std::string& config_file, bool resume,
                            bool rank0) {
  ClaimedRun run;
  if (rank0) {
    run.claim = check_run_folder(run_dir, config_file, resume);
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec) {
      throw std::runtime_error("run directory " + run_dir + ": cannot create: " + ec.message());
    }
    if (::access(run_dir.c_str(), W_OK) != 0) {
      throw std::runtime_error("run directory " + run_dir + ": not writable");
    }
    run.lock = std::make_unique<RunFolderLock>(run_dir);  // a second `train` fails here
  }
  run.debris = rank0 ? checkpoint::remove_debris(run_dir) : 0;
  const auto existing = checkpoint::checkpoint_steps(run_dir);
  if (resume) {
    run.resume_from = checkpoint::latest_checkpoint(run_dir);
    if (run.resume_from.empty()) {
      throw std::runtime_error("run directory " + run_dir + ": no complete checkpoint to resume" +
                               (existing.empty() ? "" : " (every checkpoint failed to load)"));
    }
  } else if (!existing.empty()) {
    throw std::invalid_argument(
        "run directory " + run_dir + " already holds a run (checkpoints/step-" +
        std::to_string(existing.back()) + "); continue it with `xmodal train --resume " + run_dir +
        "` or choose another --run-dir");
  }
  return run;
}

void check_resumable(const checkpoint::TrainState& saved, const checkpoint::TrainState& planned,
                     int64_t batches_per_epoch, const std::string& dir) {
  if (saved.total_steps != planned.total_steps || saved.warmup_steps != planned.warmup_steps ||
      saved.schedule != planned.schedule || saved.base_lr != planned.base_lr) {
    log::warn(
        "[train] the schedule differs from the checkpoint's ({} steps, warmup {}, {}, lr {}): "
        "the resumed run will not match an uninterrupted one",
        saved.total_steps, saved.warmup_steps, saved.schedule, saved.base_lr);
  }
  if (saved.world_size != planned.world_size) {
    throw std::invalid_argument(
        "checkpoint " + dir + " was written by a run of " + std::to_string(saved.world_size) +
        " process(es); resume it with the same number (" +
        (saved.world_size > 1 ? "--nproc " + std::to_string(saved.world_size)
                              : std::string("no --nproc")) +
        "): its data position counts batches of batch_size x processes. To continue with "
        "another number, start a new run from its weights (model.vision.init_from / "
        "model.text.init_from)");
  }
  if (saved.batch < 0 || saved.batch > batches_per_epoch) {  // state.json edited or corrupt
    throw std::runtime_error("checkpoint " + dir + ": its data position (batch " +
                             std::to_string(saved.batch) + ") is outside the epoch of " +
                             std::to_string(batches_per_epoch) +
                             " batches; the data set or train.batch_size changed, or state.json "
                             "is damaged");
  }
}

}  // namespace xmodal::train
