#include "xmodal/train/progress.h"

#include <torch/csrc/autograd/profiler_legacy.h>

#include <cstdlib>

#include "xmodal/core/logging.h"
#include "xmodal/train/metrics_log.h"

namespace xmodal::train {
namespace {

double seconds_since(Progress::Clock::time_point start) {
  return std::chrono::duration<double>(Progress::Clock::now() - start).count();
}

}  // namespace

bool eval_due(const config::TrainConfig& tc, int64_t step, bool epoch_done, bool last_step) {
  return (tc.eval_every > 0 && step % tc.eval_every == 0) || (tc.eval_every == 0 && epoch_done) ||
         last_step;
}

bool periodic_checkpoint_due(const config::TrainConfig& tc, int64_t step, bool epoch_done) {
  return (tc.checkpoint_every > 0 && step % tc.checkpoint_every == 0) ||
         (tc.checkpoint_every == 0 && epoch_done);
}

Progress::Progress(int64_t total_steps, double elapsed_before)
    : total_steps_(total_steps), elapsed_before_(elapsed_before) {}

void Progress::waited(double seconds) {
  data_wait_s_ += seconds;
  interval_wait_s_ += seconds;
}

void Progress::stepped(double loss, int64_t samples) {
  ++steps_;
  samples_ += samples;
  interval_loss_ += loss;
  interval_steps_ += 1;
  interval_samples_ += samples;
}

nlohmann::json Progress::report(int64_t step, int64_t epoch, double lr, double grad_norm) {
  const double secs = seconds_since(interval_start_);
  const double rate = secs > 0 ? interval_samples_ / secs : 0.0;
  const double eta = interval_steps_ > 0 ? secs / interval_steps_ * (total_steps_ - step) : 0.0;
  const double loss = interval_loss_ / interval_steps_;
  log::info(
      "[train] step {}/{} epoch {} loss {:.4f} lr {:.3g} grad {:.3g} {:.0f} samples/s "
      "(data wait {:.0f}%) ETA {}",
      step, total_steps_, epoch, loss, lr, grad_norm, rate,
      secs > 0 ? 100.0 * interval_wait_s_ / secs : 0.0, format_duration(eta));
  nlohmann::json record = {{"event", "train"},
                           {"step", step},
                           {"epoch", epoch},
                           {"loss", loss},
                           {"lr", lr},
                           {"grad_norm", grad_norm},
                           {"samples_per_s", rate},
                           {"data_wait_s", interval_wait_s_},
                           {"elapsed_s", elapsed_seconds()}};
  interval_loss_ = 0;
  interval_steps_ = 0;
  interval_samples_ = 0;
  interval_wait_s_ = 0;
  interval_start_ = Clock::now();
  return record;
}

Progress::Pause::~Pause() {
  p_.interval_start_ += Clock::now() - start_;
  p_.paused_s_ += seconds_since(start_);
}

double Progress::elapsed_seconds() const { return elapsed_before_ + seconds_since(loop_start_); }

double Progress::train_seconds() const { return seconds_since(loop_start_) - paused_s_; }

StepProfiler::StepProfiler() : path_(std::getenv("XMODAL_PROFILE")) {}

StepProfiler::~StepProfiler() = default;

void StepProfiler::before_step(int64_t steps_done) {
  if (path_ != nullptr && steps_done == 10) {
    profile_ = std::make_unique<torch::autograd::profiler::RecordProfile>(path_);
  }
  if (profile_ && steps_done == 20) {
    profile_.reset();
    log::info("[train] profile of steps 11-20 written to {}", path_);
  }
}

}  // namespace xmodal::train
