// The training run behind train() (trainer.h), shared by its two files: trainer_setup.cpp
// (config checks, run folder, data, model, plan, resume) and trainer.cpp (the loop and what
// follows each step). Internal to lib/xmodal/train/.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/config.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/models/model.h"
#include "xmodal/train/distill.h"
#include "xmodal/train/distributed.h"
#include "xmodal/train/early_stopping.h"
#include "xmodal/train/metrics_log.h"
#include "xmodal/train/optimizer.h"
#include "xmodal/train/progress.h"
#include "xmodal/train/run_folder.h"
#include "xmodal/train/train_step.h"
#include "xmodal/train/trainer.h"

namespace xmodal::train::detail {

using checkpoint::Artifacts;
using checkpoint::CheckpointContent;
using checkpoint::TrainState;
using Clock = std::chrono::steady_clock;

// The micro-batches of one optimizer step, and whether they end the epoch.
struct Group {
  std::vector<data::Batch> batches;
  bool epoch_done = false;
};

class Trainer {
 public:
  Trainer(const config::Config& config, const TrainOptions& options);
  TrainResult run();

 private:
  void check_config();
  void stamp_plan(TrainState& state) const;
  void take_run_folder();
  void load_data();
  void build_model();
  void plan();
  void resume();
  void start_next_epoch();
  std::optional<Group> next_group();
  void update(const StepOutcome& outcome, bool epoch_done);
  [[noreturn]] void fail_non_finite(const StepOutcome& outcome) const;
  bool after_step(const StepOutcome& outcome, bool epoch_done);
  bool validate();
  void save(bool improved);
  void finish();

  config::Config config_;
  const config::TrainConfig& tc_;
  TrainOptions options_;
  Clock::time_point started_ = Clock::now();
  DistEnv dist_env_;
  bool rank0_;
  log::ScopedLevel quiet_;  // the processes other than rank 0 log warnings only
  c10::Device device_{c10::kCPU};

  std::unique_ptr<RunFolderLock> lock_;
  std::string resume_from_;
  std::optional<log::ScopedFile> log_file_;
  int compute_threads_ = 1;
  std::unique_ptr<Communicator> comm_;
  CheckpointContent resumed_;

  Artifacts artifacts_;
  std::shared_ptr<data::TaskData> train_data_, val_data_;
  std::map<std::string, std::string> files_;  // what every checkpoint carries besides weights
  std::optional<data::Loader> train_loader_, val_loader_;

  models::Model model_{nullptr};
  std::optional<AdamW> optimizer_;
  std::optional<TrainStep> step_;
  std::optional<Teacher> teacher_;  // train.distill
  LrSchedule schedule_;
  int64_t batches_per_epoch_ = 0, steps_per_epoch_ = 0;
  EarlyStopping early_stopping_;
  TrainState state_;
  std::string best_dir_;
  std::string metrics_path_;
  std::string tensorboard_path_;  // RUN_DIR/tb/events.out.tfevents.*; empty: none written
  std::optional<MetricsLog> metrics_log_;
  std::optional<Progress> progress_;
  // The epoch in flight started at its first batch, and has yielded a batch.
  bool epoch_from_start_ = true, epoch_had_batch_ = false;
  TrainResult result_;
};

}  // namespace xmodal::train::detail
