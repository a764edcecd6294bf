#include "xmodal/train/trainer.h"

#include <nlohmann/json.hpp>

#include <cmath>
#include <csignal>
#include <filesystem>
#include <stdexcept>

#include "xmodal/core/runtime.h"
#include "xmodal/eval/evaluator.h"
#include "xmodal/train/encoder_init.h"
#include "xmodal/train/signals.h"
#include "xmodal/train/trainer_impl.h"

namespace xmodal::train {
// The checkpoint layer is the trainer's vocabulary (TrainState, load_checkpoint, ...).
using namespace xmodal::checkpoint;  // NOLINT(build/namespaces)
using nlohmann::json;

namespace detail {

// The data position moves to the first batch of the next epoch.
void Trainer::start_next_epoch() {
  state_.epoch += 1;
  state_.batch = 0;
  epoch_from_start_ = true;
  epoch_had_batch_ = false;
  train_loader_->start(state_.epoch, 0);
}

// The next group of grad_accum micro-batches; nullopt at the end of an epoch (the next one has
// started).
std::optional<Group> Trainer::next_group() {
  Group group;
  const auto wait_start = Clock::now();
  while (static_cast<int>(group.batches.size()) < tc_.grad_accum) {
    auto batch = train_loader_->next();
    if (!batch) break;
    group.batches.push_back(std::move(*batch));
  }
  progress_->waited(std::chrono::duration<double>(Clock::now() - wait_start).count());
  if (group.batches.empty()) {                     // the epoch had no batch left
    if (epoch_from_start_ && !epoch_had_batch_) {  // data.max_bad_share 1 and nothing readable
      throw std::runtime_error("[data] every sample of epoch " + std::to_string(state_.epoch) +
                               " of " + config_.data.train_split +
                               " was bad and skipped: nothing to train on");
    }
    start_next_epoch();
    return std::nullopt;
  }
  epoch_had_batch_ = true;
  group.epoch_done = train_loader_->position().batch >= batches_per_epoch_;
  return group;
}

[[noreturn]] void Trainer::fail_non_finite(const StepOutcome& o) const {
  const bool loss_bad = !std::isfinite(o.loss);
  const double bad = loss_bad ? o.loss : o.grad_norm;
  const std::string last = result_.last_checkpoint.empty() ? latest_checkpoint(config_.run.dir)
                                                           : result_.last_checkpoint;
  throw std::runtime_error(
      "step " + std::to_string(state_.step + 1) + ": " + (loss_bad ? "loss" : "gradient norm") +
      " is " + (std::isnan(bad) ? "nan" : "inf") + " (epoch " + std::to_string(state_.epoch) +
      "); stopped without updating the weights; " +
      (last.empty() ? std::string("no checkpoint was written yet")
                    : "the last good checkpoint is " + last) +
      " (try a lower train.lr or train.grad_clip)");
}

// The optimizer step, and the state after it.
void Trainer::update(const StepOutcome& o, bool epoch_done) {
  const double lr = tc_.lr * schedule_.factor(state_.step + 1);
  optimizer_->step(lr);
  optimizer_->zero_grad();
  state_.step += 1;
  state_.samples_seen += o.samples;
  state_.last_lr = lr;
  if (epoch_done) {
    start_next_epoch();
  } else {
    state_.batch = train_loader_->position().batch;
  }
  state_.elapsed_seconds = progress_->elapsed_seconds();
  result_.losses.push_back(o.loss);
  progress_->stepped(o.loss, o.samples);
}

// Validation on rank 0: logged and recorded; returns whether it improved on the best.
bool Trainer::validate() {
  const models::LossWeights weights{tc_.loss.presence_weight, tc_.loss.count_weight};
  auto r = eval::evaluate(model_, *val_data_, *val_loader_, artifacts_.class_names, weights,
                          device_, config_.eval.vqa_protocol);
  state_.last_metrics = r.metrics;
  state_.last_eval_step = state_.step;
  const auto it = r.metrics.find(tc_.early_stopping.metric);
  const double value = it == r.metrics.end() ? std::nan("") : it->second;
  const bool improved = early_stopping_.update(state_.early_stopping, value, state_.step);
  log::info("[eval] step {} {} ({} examples, {:.1f} s): {}{}", state_.step, config_.data.val_split,
            r.examples, r.seconds, format_metrics(r.metrics), improved ? "  (best)" : "");
  metrics_log_->write({{"event", "eval"},
                       {"step", state_.step},
                       {"epoch", state_.epoch},
                       {"split", config_.data.val_split},
                       {"seconds", r.seconds},
                       {"metrics", metrics_json(r.metrics)},
                       {"best", improved}});
  return improved;
}

void Trainer::save(bool improved) {
  if (!rank0_) return;
  const std::string& run_dir = config_.run.dir;
  state_.rng_cpu = cpu_rng_state();
  stamp_plan(state_);
  CheckpointContent content;
  content.state = state_;
  content.model = state_tensors(*model_);
  content.optimizer = optimizer_->state();
  content.files = files_;
  const std::string dir = write_checkpoint(run_dir, content);
  set_pointer(run_dir, "last", dir);
  if (improved) {
    best_dir_ = dir;
    set_pointer(run_dir, "best", dir);
  }
  std::vector<int64_t> keep;
  if (state_.early_stopping.best) keep.push_back(state_.early_stopping.best_step);
  prune_checkpoints(run_dir, tc_.keep_last, keep);
  result_.last_checkpoint = dir;
  log::info("[checkpoint] step {} -> {}{}", state_.step, dir, improved ? " (best)" : "");
}

// What follows a step: log, validate, checkpoint, stop. Returns whether the loop ends.
bool Trainer::after_step(const StepOutcome& o, bool epoch_done) {
  const bool last_step = state_.step >= schedule_.total_steps;
  if (state_.step % tc_.log_every == 0 || last_step) {
    metrics_log_->write(progress_->report(state_.step, state_.epoch, state_.last_lr, o.grad_norm));
  }
  Progress::Pause pause(*progress_);  // validation and checkpoints are not training time
  bool improved = false, stop_early = false;
  if (eval_due(tc_, state_.step, epoch_done, last_step)) {
    if (rank0_) {
      improved = validate();
      stop_early = state_.early_stopping.stopped;
    }
    if (comm_) {  // rank 0 validated: every process follows its decisions
      auto flags = torch::tensor({improved ? 1.0 : 0.0, stop_early ? 1.0 : 0.0}, torch::kFloat64);
      comm_->broadcast({flags}, /*timeout_s=*/7 * 24 * 3600.0);
      improved = flags[0].item<double>() > 0;
      stop_early = flags[1].item<double>() > 0;
    }
  }
  const int signal = comm_ ? o.signal : StopSignals::pending();
  const bool stop_requested = signal != 0 || (options_.stop_after_steps > 0 &&
                                              progress_->steps() >= options_.stop_after_steps);
  if (periodic_checkpoint_due(tc_, state_.step, epoch_done) || improved || last_step ||
      stop_early || stop_requested) {
    save(improved);
  }
  const auto& es = tc_.early_stopping;
  if (stop_early) {
    log::info(
        "[train] early stopping: val {} did not improve by more than {} for {} evaluations "
        "(best {:.4f} at step {})",
        es.metric, es.min_delta, state_.early_stopping.bad_evals,
        state_.early_stopping.best.value_or(std::nan("")), state_.early_stopping.best_step);
    result_.stopped_early = true;
    return true;
  }
  if (stop_requested) {
    result_.interrupted = true;
    result_.signal = signal;
    log::info("[train] {} at step {}/{}; checkpoint written. Resume with: xmodal train --resume {}",
              signal == SIGINT    ? "interrupted (SIGINT)"
              : signal == SIGTERM ? "terminated (SIGTERM)"
                                  : "stopped",
              state_.step, schedule_.total_steps, config_.run.dir);
    return true;
  }
  return false;
}

// The result, the end record of metrics.jsonl and the summary line.
void Trainer::finish() {
  const auto& s = state_;
  result_.step = s.step;
  result_.epoch = s.epoch;
  result_.best_checkpoint = best_dir_;
  result_.best_metric = s.early_stopping.best;
  result_.best_step = s.early_stopping.best_step;
  result_.last_metrics = s.last_metrics;
  result_.seconds = std::chrono::duration<double>(Clock::now() - started_).count();
  // Training time: the loop without validation and checkpoints (loader waits included).
  const double train_secs = progress_->train_seconds();
  const double wait_s = progress_->data_wait_seconds();
  result_.samples_per_second =
      train_secs > 0 ? static_cast<double>(progress_->samples()) / train_secs : 0.0;
  if (result_.interrupted) return;
  const double loader_cpu_s = train_loader_->cpu_seconds();
  const double loader_share =
      train_secs > 0 ? loader_cpu_s / (train_secs * std::max(1, compute_threads_)) : 0.0;
  const data::Loader::CacheStats cache = train_loader_->cache_stats();
  metrics_log_->write({{"event", "end"},
                       {"step", s.step},
                       {"samples", progress_->samples()},
                       {"batches_per_epoch", batches_per_epoch_},
                       {"train_s", train_secs},
                       {"data_wait_s", wait_s},
                       // the training loader's own CPU time (its threads' clocks), and the share of
                       // the cores' time over the loop it took
                       {"loader_cpu_s", loader_cpu_s},
                       {"loader_cpu_share", loader_share},
                       {"image_cache",
                        {{"images", cache.images},
                         {"mib", static_cast<double>(cache.bytes) / (1 << 20)},
                         {"hits", cache.hits},
                         {"misses", cache.misses}}},
                       {"samples_per_s", result_.samples_per_second},
                       {"epoch", s.epoch},
                       {"stopped_early", result_.stopped_early},
                       {"best_step", result_.best_step},
                       {"best", result_.best_metric ? json(*result_.best_metric) : json(nullptr)},
                       {"elapsed_s", s.elapsed_seconds}});
  log::info(
      "[train] done: {} steps in {} ({:.0f} samples/s, data wait {:.1f}%, loader CPU {:.1f}% "
      "of the cores); best val {} {} at step {} -> {} (also {}/best)",
      s.step, format_duration(s.elapsed_seconds), result_.samples_per_second,
      train_secs > 0 ? 100.0 * wait_s / train_secs : 0.0, 100.0 * loader_share,
      tc_.early_stopping.metric,
      result_.best_metric ? fmt::format("{:.4f}", *result_.best_metric) : "n/a", result_.best_step,
      best_dir_.empty() ? "-" : best_dir_, config_.run.dir);
}

// docs/design.md section 2: set-up, then for each step: batch -> step -> (log | validate |
// checkpoint | stop).
TrainResult Trainer::run() {
  check_config();
  take_run_folder();
  compute_threads_ = configure_threads(config_.run.threads);
  log_runtime_summary();
  if (dist_env_.enabled()) {
    comm_ = std::make_unique<Communicator>(dist_env_, config_.dist, device_);
    log::info("[dist] rank {} of {} ({}), batch {} per process, {} in all", dist_env_.rank,
              dist_env_.world_size, comm_->backend(), tc_.batch_size,
              tc_.batch_size * dist_env_.world_size);
  }
  if (!resume_from_.empty()) {
    log::info("[train] loading {}", resume_from_);
    resumed_ = load_checkpoint(resume_from_, {/*optimizer=*/true});
  }
  load_data();
  build_model();
  plan();
  if (!resume_from_.empty()) resume();
  resumed_ = {};  // the checkpoint's tensors now live in the model and the optimizer
  metrics_log_.emplace(rank0_ ? metrics_path_ : std::string(), tensorboard_path_);
  log::info(
      "[train] {} steps ({} per epoch of {} batches of {}, accumulating {}), warmup {}, {} "
      "decay, lr {}, weight decay {}",
      schedule_.total_steps, steps_per_epoch_, batches_per_epoch_, tc_.batch_size, tc_.grad_accum,
      schedule_.warmup_steps, state_.schedule, tc_.lr, tc_.weight_decay);

  StopSignals signals(options_.handle_signals);
  train_loader_->start(state_.epoch, state_.batch);
  progress_.emplace(schedule_.total_steps, state_.elapsed_seconds);
  StepProfiler profiler;
  if (state_.early_stopping.stopped) {
    // resumed from the checkpoint an early stop wrote (the process died before it exited): the
    // run is over, as the uninterrupted one would be
    log::info(
        "[train] the run stopped early at step {} (val {} best {:.4f} at step {}); nothing left "
        "to train",
        state_.step, tc_.early_stopping.metric, state_.early_stopping.best.value_or(std::nan("")),
        state_.early_stopping.best_step);
    result_.stopped_early = true;
  }
  while (state_.step < schedule_.total_steps && !state_.early_stopping.stopped) {
    profiler.before_step(progress_->steps());
    const auto group = next_group();
    if (!group) continue;  // a new epoch began
    freeze_encoders(*model_, config_.model, state_.step);
    const StepOutcome outcome = step_->run(group->batches);
    if (!outcome.finite()) fail_non_finite(outcome);
    update(outcome, group->epoch_done);
    if (after_step(outcome, group->epoch_done)) break;
  }
  finish();
  return result_;
}

}  // namespace detail

TrainResult train(const config::Config& config, const TrainOptions& options) {
  return detail::Trainer(config, options).run();
}

}  // namespace xmodal::train
