// `xmodal eval`: a checkpoint on a split, with everything else read from the checkpoint.
// Writes metrics.json (+ per-category figures for counting), the predictions (vqa: the official
// results format [{"question_id", "answer"}]; counting: predictions.jsonl) and returns a table.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace xmodal::eval {

struct EvalOptions {
  std::string checkpoint;  ///< checkpoint dir, best/last link or run dir
  std::string split = "test";
  std::string data_root;  ///< "" = data.root saved in the checkpoint
  std::string out_dir;    ///< "" = RUN_DIR/eval/SPLIT-step-N (or CKPT/eval-SPLIT)
  /// Config assignments applied to the checkpoint's config (run.threads, eval.batch_size, ...).
  std::vector<std::string> overrides;
};

struct EvalSummary {
  std::string out_dir;
  std::string checkpoint;
  int64_t step = 0;
  int64_t examples = 0;
  bool has_targets = true;
  std::map<std::string, double> metrics;
  std::string table;  ///< human-readable, for stdout
  double seconds = 0;
};

/// Throws std::invalid_argument for bad options and std::runtime_error for unreadable
/// checkpoints or data (naming them).
EvalSummary run_eval(const EvalOptions& options);

}  // namespace xmodal::eval
