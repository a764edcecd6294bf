// Claiming a run folder for `xmodal train`: which folders a run may write, and an exclusive
// lock while it does.
//
// A fresh run takes a folder that does not exist, is empty, or was made by xmodal (it holds
// RUN_DIR/.xmodal-run.lock) and has no checkpoint yet. A folder the user made is also taken
// when it holds nothing but the very config being run (`xmodal train exp1/config.yaml
// --run-dir exp1`); that file is left untouched and the resolved config goes to
// config.resolved.yaml. Anything else is refused before a byte is written.
//
// The lock is an flock(2) on RUN_DIR/.xmodal-run.lock holding the PID: a second `train` on the
// same folder fails at once naming it, and the kernel releases it on any exit, SIGKILL included.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "xmodal/checkpoint/checkpoint.h"

namespace xmodal::train {

/// The lock and marker file of a run folder.
inline constexpr const char* kRunLockFile = ".xmodal-run.lock";

/// Holds the exclusive lock of a run folder for its lifetime.
class RunFolderLock {
 public:
  /// Creates RUN_DIR/.xmodal-run.lock and locks it. Throws std::runtime_error naming the PID
  /// of the process holding it.
  explicit RunFolderLock(const std::string& run_dir);
  ~RunFolderLock();
  RunFolderLock(const RunFolderLock&) = delete;
  RunFolderLock& operator=(const RunFolderLock&) = delete;

 private:
  int fd_ = -1;
};

struct RunFolderClaim {
  /// RUN_DIR/config.yaml is the user's config being run: not to be written.
  bool users_config = false;
  /// Where the run's resolved config goes: RUN_DIR/config.yaml, or config.resolved.yaml.
  std::string config_path;
  /// The folder was made by xmodal for a run that never wrote a checkpoint: its
  /// metrics.jsonl belongs to that attempt and is cleared.
  bool stale_attempt = false;
};

/// Decides, before anything is written, whether a fresh run (resume false) or a resumed one may
/// use `run_dir`, `config_file` being the config given on the command line ("" if none).
/// Creates the folder if needed. Throws std::invalid_argument for a folder that is not the
/// run's to take (naming what is in it), std::runtime_error if it cannot be created.
RunFolderClaim check_run_folder(const std::string& run_dir, const std::string& config_file,
                                bool resume);

/// The config a resumed run continues with: RUN_DIR/config.resolved.yaml if the run wrote one,
/// else RUN_DIR/config.yaml.
std::string saved_run_config(const std::string& run_dir);

/// A run folder taken for training.
struct ClaimedRun {
  RunFolderClaim claim;
  std::unique_ptr<RunFolderLock> lock;  ///< held by rank 0
  int debris = 0;                       ///< leftovers of a killed run removed
  std::string resume_from;              ///< resume: the newest valid checkpoint
};

/// Takes `run_dir` for a run: on rank 0 check_run_folder(), creation, a writability check and
/// the lock; then the debris of a killed run is removed, and a resumed run finds its newest
/// valid checkpoint (std::runtime_error when there is none) while a fresh one refuses a folder
/// that holds checkpoints (std::invalid_argument, saying how to continue it).
ClaimedRun claim_run_folder(const std::string& run_dir, const std::string& config_file, bool resume,
                            bool rank0);

/// A checkpoint's state continues a run only when its processes and data position fit;
/// `planned` is the state the run's own config gives. A changed schedule is warned about (the
/// resumed run then differs from an uninterrupted one). `dir` names the checkpoint in errors.
void check_resumable(const checkpoint::TrainState& saved, const checkpoint::TrainState& planned,
                     int64_t batches_per_epoch, const std::string& dir);

}  // namespace xmodal::train
