// Checkpoints (docs/design.md section 6): RUN_DIR/checkpoints/step-N/ holding model.safetensors,
// optimizer.safetensors, the files that make it self-describing (config.yaml, the tokenizer
// vocabulary, the class names) and state.json, which lists every other file with its size and
// CRC-32.
//
// Crash safety: a checkpoint is written into checkpoints/.tmp-step-N-PID, every file fsynced,
// state.json last, then the directory is renamed to step-N (atomic on POSIX) and the parent
// fsynced. A kill at any moment leaves either no step-N or a complete one; debris (.tmp-*,
// .trash-*) is removed by the next run. The `last` and `best` pointers are symlinks replaced by
// rename; readers never trust them alone: loading verifies sizes and checksums.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xmodal/config/config.h"

namespace xmodal::checkpoint {

inline constexpr int kCheckpointFormatVersion = 1;

struct EarlyStoppingState {
  std::optional<double> best;  ///< best value of the watched metric so far
  int64_t best_step = 0;       ///< step of that evaluation
  int64_t bad_evals = 0;       ///< evaluations since the last improvement
  bool stopped = false;
};

/// Everything besides tensors that a resumed run needs.
struct TrainState {
  int64_t step = 0;          ///< optimizer steps done
  int64_t epoch = 0;         ///< data position: epoch of the next batch
  int64_t batch = 0;         ///< data position: next batch within that epoch
  int world_size = 1;        ///< processes of the run (a batch is batch_size x world_size)
  int64_t samples_seen = 0;  ///< training samples consumed
  double elapsed_seconds = 0;
  // scheduler
  std::string schedule;
  int64_t total_steps = 0;
  int64_t warmup_steps = 0;
  double base_lr = 0;
  double last_lr = 0;
  std::string rng_cpu;  ///< LibTorch CPU generator state, hex
  std::string metric;   ///< early_stopping.metric
  std::string metric_mode;
  EarlyStoppingState early_stopping;
  std::map<std::string, double> last_metrics;  ///< latest validation metrics
  int64_t last_eval_step = 0;
};

struct CheckpointContent {
  TrainState state;
  std::map<std::string, torch::Tensor> model;
  std::map<std::string, torch::Tensor> optimizer;  ///< may be empty (then no file is written)
  std::map<std::string, std::string> files;        ///< extra files by name, e.g. config.yaml
};

/// Writes RUN_DIR/checkpoints/step-<state.step> as described above, replacing an existing one of
/// the same step. Returns the checkpoint directory. Throws std::runtime_error naming the path.
std::string write_checkpoint(const std::string& run_dir, const CheckpointContent& content);

/// Writes a checkpoint as the standalone directory `dir` (xmodal quantize's output), crash-safe
/// as above (a temporary sibling renamed into place). `dir` must not exist, or be an empty
/// directory (not a symlink); std::invalid_argument otherwise. Returns `dir`.
std::string write_checkpoint_dir(const std::string& dir, const CheckpointContent& content);

struct LoadOptions {
  bool optimizer = true;  ///< also read optimizer.safetensors
  /// Parse the tensors; false only verifies (state.json, every file's size and CRC-32): what
  /// checkpoint discovery needs before the chosen one is loaded once.
  bool tensors = true;
};

/// Reads and verifies a checkpoint directory (format version, every listed file's size and
/// CRC-32). Throws std::runtime_error naming the directory and what is wrong.
CheckpointContent load_checkpoint(const std::string& dir, LoadOptions options = {});

/// The newest checkpoint of a run that loads, as its directory; "" when there is none. Broken
/// ones are skipped, each with a warning naming the problem.
std::string latest_checkpoint(const std::string& run_dir);

/// A checkpoint named by the user: a checkpoint directory (or a `best` / `last` link), or a run
/// directory (its latest valid checkpoint). Throws std::runtime_error when there is none.
std::string resolve_checkpoint(const std::string& path);

/// Points RUN_DIR/<name> (a relative symlink) at checkpoints/step-N, replaced atomically.
void set_pointer(const std::string& run_dir, const std::string& name,
                 const std::string& checkpoint_dir);

/// Steps of the complete checkpoints of a run (directories named step-N), ascending.
std::vector<int64_t> checkpoint_steps(const std::string& run_dir);

/// Removes all but the newest `keep_last` checkpoints, never one in `keep` (e.g. the best).
void prune_checkpoints(const std::string& run_dir, int keep_last, const std::vector<int64_t>& keep);

/// Removes what a killed writer leaves behind (checkpoints/.tmp-*, .trash-*, temporary pointer
/// links); returns how many entries were removed.
int remove_debris(const std::string& run_dir);

/// CRC-32 (zlib) of a byte string, as 8 lower-case hex digits.
std::string crc32_hex(std::string_view bytes);

/// LibTorch's CPU generator state as hex, and back.
std::string cpu_rng_state();
void set_cpu_rng_state(const std::string& hex);
/// Throws std::runtime_error unless `hex` is a state set_cpu_rng_state() accepts.
void check_cpu_rng_state(const std::string& hex);

}  // namespace xmodal::checkpoint
