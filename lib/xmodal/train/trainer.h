// `xmodal train`: the training loop (docs/design.md sections 2 and 6).
//
// One optimizer step = grad_accum micro-batches (fewer at the end of an epoch); each micro-batch
// loss is the sum of its per-sample losses divided by the samples of the whole group, so the
// gradient equals that of one large batch. The schedule counts optimizer steps. Validation runs
// every eval_every steps (0 = each epoch) and at the end; early stopping watches one metric; a
// checkpoint is written every checkpoint_every steps (0 = each epoch), whenever validation
// improves, at the end and when interrupted. A resumed run (same threads, CPU) reproduces the
// uninterrupted run's losses and weights bit for bit.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/train/metrics_log.h"  // truncate_metrics, used with resume

namespace xmodal::train {

struct TrainOptions {
  /// Continue config.run.dir from its newest valid checkpoint instead of starting fresh.
  bool resume = false;
  /// Stop as if interrupted after this many optimizer steps of this process (0 = never); used by
  /// tests and kill tests.
  int64_t stop_after_steps = 0;
  /// Catch SIGINT / SIGTERM: finish the step, checkpoint, return interrupted.
  bool handle_signals = true;
  /// The config file given on the command line ("" if none): if it is RUN_DIR/config.yaml it
  /// is left untouched (train/run_folder.h).
  std::string config_file;
};

struct TrainResult {
  std::string run_dir;
  int64_t step = 0;         ///< optimizer steps done (all processes of the run)
  int64_t total_steps = 0;  ///< planned steps
  int64_t epoch = 0;
  std::vector<double> losses;  ///< mean training loss of each step this process took
  std::string last_checkpoint;
  std::string best_checkpoint;  ///< "" when no validation ran
  std::optional<double> best_metric;
  int64_t best_step = 0;
  std::map<std::string, double> last_metrics;
  bool stopped_early = false;
  bool interrupted = false;  ///< by a signal or stop_after_steps
  int signal = 0;            ///< the signal, when one interrupted the run
  double seconds = 0;        ///< wall time of this process's training
  double samples_per_second = 0;
};

/// Trains as `config` says. Throws std::invalid_argument for a run directory that already holds
/// a run (without resume) and std::runtime_error for unreadable data, unwritable run
/// directories, a non-finite loss (naming the step; the last good checkpoint stays), etc.
TrainResult train(const config::Config& config, const TrainOptions& options = {});

}  // namespace xmodal::train
