// The training loop's clock and its schedule of events: throughput and ETA of the [train] log
// lines, time spent waiting for the loader and paused for validation and checkpoints, and which
// steps validate or checkpoint (docs/design.md section 6).
#pragma once

#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdint>
#include <memory>

#include "xmodal/config/config.h"

namespace torch::autograd::profiler {
struct RecordProfile;
}

namespace xmodal::train {

/// Validation is due every eval_every steps (0: at the end of each epoch) and at the last step.
bool eval_due(const config::TrainConfig& tc, int64_t step, bool epoch_done, bool last_step);
/// The periodic checkpoint: every checkpoint_every steps (0: at the end of each epoch). A
/// checkpoint is also written when validation improved, at the last step and when stopping.
bool periodic_checkpoint_due(const config::TrainConfig& tc, int64_t step, bool epoch_done);

class Progress {
 public:
  using Clock = std::chrono::steady_clock;
  /// `elapsed_before`: training seconds of the run before this process (resumed runs).
  Progress(int64_t total_steps, double elapsed_before);

  /// Seconds the loop waited for the loader.
  void waited(double seconds);
  /// A finished optimizer step of `samples` samples (all processes).
  void stepped(double loss, int64_t samples);
  /// The [train] line for `step` (logged) and its metrics.jsonl record; starts a new interval.
  nlohmann::json report(int64_t step, int64_t epoch, double lr, double grad_norm);

  /// Time in the scope is neither training time nor part of the interval's throughput.
  class Pause {
   public:
    explicit Pause(Progress& p) : p_(p), start_(Clock::now()) {}
    ~Pause();
    Pause(const Pause&) = delete;
    Pause& operator=(const Pause&) = delete;

   private:
    Progress& p_;
    Clock::time_point start_;
  };

  /// The run's wall time so far, this process's and the earlier ones' (checkpointed).
  double elapsed_seconds() const;
  /// This process's loop time without the pauses (loader waits included).
  double train_seconds() const;
  double data_wait_seconds() const { return data_wait_s_; }
  int64_t steps() const { return steps_; }
  int64_t samples() const { return samples_; }

 private:
  int64_t total_steps_;
  double elapsed_before_;
  Clock::time_point loop_start_ = Clock::now(), interval_start_ = loop_start_;
  int64_t steps_ = 0, samples_ = 0;  // this process
  double data_wait_s_ = 0, paused_s_ = 0;
  double interval_loss_ = 0, interval_wait_s_ = 0;
  int64_t interval_steps_ = 0, interval_samples_ = 0;
};

/// XMODAL_PROFILE=FILE: a Chrome trace of training steps 11..20 (every LibTorch op, forward
/// and backward) for performance work; scripts/bench/profile_summary.py summarises it.
class StepProfiler {
 public:
  StepProfiler();
  ~StepProfiler();
  StepProfiler(const StepProfiler&) = delete;
  StepProfiler& operator=(const StepProfiler&) = delete;
  /// Called before each step with the steps this process has done.
  void before_step(int64_t steps_done);

 private:
  const char* path_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile_;
};

}  // namespace xmodal::train
