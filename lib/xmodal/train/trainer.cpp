#include "xmodal/train/trainer.h"

#include <unistd.h>

#include <torch/csrc/autograd/profiler_legacy.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <optional>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/eval/evaluator.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/import.h"
#include "xmodal/models/pretrained.h"
#include "xmodal/tasks/task.h"
#include "xmodal/text/factory.h"
#include "xmodal/train/distributed.h"
#include "xmodal/train/early_stopping.h"
#include "xmodal/train/encoder_init.h"
#include "xmodal/train/metrics_log.h"
#include "xmodal/train/optimizer.h"
#include "xmodal/train/precision.h"
#include "xmodal/train/progress.h"
#include "xmodal/train/run_folder.h"
#include "xmodal/train/signals.h"
#include "xmodal/train/train_step.h"

namespace xmodal::train {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
// The checkpoint layer is the trainer's vocabulary (TrainState, load_checkpoint, ...).
using namespace xmodal::checkpoint;  // NOLINT(build/namespaces)

namespace {

class LogFileGuard {
 public:
  explicit LogFileGuard(const std::string& path) : open_(!path.empty()) {
    if (open_) log::set_file(path);
  }
  ~LogFileGuard() {
    if (open_) log::close_file();
  }
  LogFileGuard(const LogFileGuard&) = delete;
  LogFileGuard& operator=(const LogFileGuard&) = delete;

 private:
  bool open_;
};

// Sets the console log level for a scope (nothing when empty).
class LevelGuard {
 public:
  explicit LevelGuard(std::optional<log::Level> level) : saved_(log::level()), set_(level) {
    if (set_) log::set_level(*set_);
  }
  ~LevelGuard() {
    if (set_) log::set_level(saved_);
  }
  LevelGuard(const LevelGuard&) = delete;
  LevelGuard& operator=(const LevelGuard&) = delete;

 private:
  log::Level saved_;
  std::optional<log::Level> set_;
};

// XMODAL_PROFILE=FILE: a Chrome trace of training steps 11..20 (every LibTorch op, forward and
// backward) for performance work; scripts/bench/profile_summary.py summarises it.
class StepProfiler {
 public:
  StepProfiler() : path_(std::getenv("XMODAL_PROFILE")) {}
  void before_step(int64_t steps_done) {
    if (path_ != nullptr && steps_done == 10) {
      profile_ = std::make_unique<torch::autograd::profiler::RecordProfile>(path_);
    }
    if (profile_ && steps_done == 20) {
      profile_.reset();
      log::info("[train] profile of steps 11-20 written to {}", path_);
    }
  }

 private:
  const char* path_;
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile_;
};

// A checkpoint's state continues this run only when its processes and data position fit; a
// changed schedule is warned about (the resumed run then differs from an uninterrupted one).
void check_resumable(const TrainState& saved, const TrainState& planned, int64_t batches_per_epoch,
                     const std::string& dir) {
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
  void claim_run_folder();
  void load_data();
  void build_model();
  void plan();
  void resume();
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
  LevelGuard level_guard_;
  c10::Device device_{c10::kCPU};

  std::unique_ptr<RunFolderLock> lock_;
  std::string resume_from_;
  std::optional<LogFileGuard> log_file_;
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
  LrSchedule schedule_;
  int64_t batches_per_epoch_ = 0, steps_per_epoch_ = 0;
  EarlyStopping early_stopping_;
  TrainState state_;
  std::string best_dir_;
  std::string metrics_path_;
  std::optional<MetricsLog> metrics_log_;
  std::optional<Progress> progress_;
  // The epoch in flight started at its first batch, and has yielded a batch.
  bool epoch_from_start_ = true, epoch_had_batch_ = false;
  TrainResult result_;
};

Trainer::Trainer(const config::Config& config, const TrainOptions& options)
    : config_(config),
      tc_(config_.train),
      options_(options),
      // Several processes (xmodal train --nproc N, or torchrun): each trains on its shard of
      // every batch; rank 0 alone writes the run directory (logs, metrics, checkpoints) and
      // validates.
      dist_env_(dist_env_from_environment()),
      rank0_(dist_env_.rank == 0),
      level_guard_(rank0_ ? std::nullopt : std::optional<log::Level>(log::Level::warn)),
      early_stopping_(tc_.early_stopping.mode, tc_.early_stopping.patience,
                      tc_.early_stopping.min_delta) {
  // A fresh run takes the architecture details of its pretrained folders into its config.yaml,
  // so its checkpoints do not need the folders (a resumed run's config has them already).
  if (!options_.resume) models::resolve_pretrained(config_);
  result_.run_dir = config_.run.dir;
  metrics_path_ = (fs::path(config_.run.dir) / "metrics.jsonl").string();
}

// Every mistake in the config is found before a file is written (exit 2).
void Trainer::check_config() {
  config::validate(config_);
  device_ = resolve_device(config_.run.device);
  check_precision(tc_.precision, device_);
  const auto& m = config_.model;
  for (const auto& [key, path] :
       {std::pair<const char*, const std::string&>{"model.vision.init_from", m.vision.init_from},
        {"model.text.init_from", m.text.init_from},
        {"model.vision.pretrained", m.vision.pretrained},
        {"model.text.pretrained", m.text.pretrained}}) {
    std::error_code ec;  // a resumed run does not read them again
    if (!options_.resume && !path.empty() && !fs::exists(path, ec)) {
      throw std::invalid_argument(std::string(key) + ": " + path + ": no such file or folder" +
                                  " (set at " + config_.origin(key) + ")");
    }
  }
}

// The run directory: checked, claimed and locked before any work; then config.yaml and
// train.log.
void Trainer::claim_run_folder() {
  const std::string& run_dir = config_.run.dir;
  RunFolderClaim claim;
  if (rank0_) {
    claim = check_run_folder(run_dir, options_.config_file, options_.resume);
    std::error_code ec;
    fs::create_directories(run_dir, ec);
    if (ec) {
      throw std::runtime_error("run directory " + run_dir + ": cannot create: " + ec.message());
    }
    if (::access(run_dir.c_str(), W_OK) != 0) {
      throw std::runtime_error("run directory " + run_dir + ": not writable");
    }
    lock_ = std::make_unique<RunFolderLock>(run_dir);  // a second `train` fails here, naming us
  }
  const int debris = rank0_ ? remove_debris(run_dir) : 0;
  const auto existing = checkpoint_steps(run_dir);
  if (options_.resume) {
    resume_from_ = latest_checkpoint(run_dir);
    if (resume_from_.empty()) {
      throw std::runtime_error("run directory " + run_dir + ": no complete checkpoint to resume" +
                               (existing.empty() ? "" : " (every checkpoint failed to load)"));
    }
  } else if (!existing.empty()) {
    throw std::invalid_argument(
        "run directory " + run_dir + " already holds a run (checkpoints/step-" +
        std::to_string(existing.back()) + "); continue it with `xmodal train --resume " + run_dir +
        "` or choose another --run-dir");
  }
  if (rank0_) {
    // The user's own config.yaml in the folder stays as written (comments, includes).
    io::write_file_atomic(claim.config_path, config::dump_config(config_));
    if (claim.stale_attempt) {  // an earlier attempt that never reached a checkpoint
      std::error_code ec;
      fs::remove(metrics_path_, ec);
    }
  }
  log_file_.emplace(rank0_ ? (fs::path(run_dir) / "train.log").string() : std::string());
  log::info("[train] {} run {} ({} task)", options_.resume ? "resuming" : "starting", run_dir,
            config::to_string(config_.task));
  if (debris > 0) {
    log::info("[train] removed {} leftover temporary file(s) of a killed run", debris);
  }
}

// The splits, the tokenizer and the class names (a resumed run's from its checkpoint).
void Trainer::load_data() {
  // vqa: the answer vocabulary (the checkpoint's, or the training split's) maps the splits
  const bool vocabulary = tasks::task(config_.task).vocabulary_from_training_split();
  std::optional<data::AnswerVocab> answers;
  if (!resume_from_.empty()) {
    artifacts_ = artifacts_from_files(config_, resumed_.files, resume_from_);
    if (vocabulary) answers.emplace(artifacts_.class_names);
  }
  const auto& d = config_.data;
  train_data_ = std::make_shared<data::TaskData>(
      data::load_split(config_, d.train_split, answers ? &*answers : nullptr));
  if (!answers && vocabulary) answers.emplace(train_data_->class_names);
  if (train_data_->examples.empty()) {
    throw std::runtime_error("training split " + d.train_split + " of " + d.root +
                             " has no examples");
  }
  val_data_ = std::make_shared<data::TaskData>(
      data::load_split(config_, d.val_split, answers ? &*answers : nullptr));
  if (!artifacts_.tokenizer) {
    std::vector<std::string> texts;
    if (config_.tokenizer.type == config::TokenizerType::word) {
      for (const auto& e : train_data_->examples)
        texts.insert(texts.end(), e.texts.begin(), e.texts.end());
    }
    artifacts_.tokenizer = text::make_tokenizer(config_, texts);
    artifacts_.class_names = train_data_->class_names;
    artifacts_.aux_class_names = train_data_->aux_class_names;
  }
  if (artifacts_.aux_class_names != train_data_->aux_class_names) {
    throw std::runtime_error("train.aux: the categories of " + d.root +
                             " differ from the checkpoint's");
  }
  log::info("[data] {}: {} examples, val: {} examples, {} classes, vocabulary {} tokens",
            d.train_split, train_data_->examples.size(), val_data_->examples.size(),
            artifacts_.class_names.size(), artifacts_.tokenizer->vocab_size());
  files_ = artifact_files(config_, artifacts_);
  auto train_options = data::loader_options(config_, true);
  train_options.rank = dist_env_.rank;
  train_options.world_size = dist_env_.world_size;
  train_loader_.emplace(train_data_, artifacts_.tokenizer, train_options);
  val_loader_.emplace(val_data_, artifacts_.tokenizer, data::loader_options(config_, false));
}

void Trainer::build_model() {
  torch::manual_seed(static_cast<uint64_t>(config_.run.seed));
  model_ = models::build_model(config_, {artifacts_.tokenizer->vocab_size(),
                                         static_cast<int64_t>(artifacts_.class_names.size()),
                                         static_cast<int64_t>(artifacts_.aux_class_names.size())});
  model_->to(device_);
  model_->train();
  log::info("[model] {} parameters\n{}", models::count_parameters(*model_),
            models::describe_model(*model_));
  if (resume_from_.empty()) init_encoders(*model_, config_);
  if (comm_) {  // every process starts from rank 0's weights
    std::vector<torch::Tensor> tensors;
    for (auto& p : model_->parameters()) tensors.push_back(p.detach());
    for (auto& b : model_->buffers()) tensors.push_back(b);
    comm_->broadcast(tensors);
  }
  optimizer_.emplace(make_param_groups(*model_, tc_.weight_decay,
                                       {tc_.vision_lr_mult, tc_.text_lr_mult, tc_.fusion_lr_mult,
                                        tc_.head_lr_mult}),
                     AdamWOptions{tc_.adam_beta1, tc_.adam_beta2, tc_.adam_eps});
  step_.emplace(model_, optimizer_->parameters(), config_, device_, comm_.get());
}

// The schedule of optimizer steps, and the state of a fresh run.
void Trainer::plan() {
  batches_per_epoch_ = train_loader_->batches_per_epoch();
  steps_per_epoch_ = (batches_per_epoch_ + tc_.grad_accum - 1) / tc_.grad_accum;
  schedule_.kind = tc_.schedule;
  // max_steps and epochs both 0 is refused by validate(); steps_per_epoch >= 1 (data checked).
  schedule_.total_steps = tc_.max_steps > 0 ? tc_.max_steps : tc_.epochs * steps_per_epoch_;
  schedule_.warmup_steps =
      std::min(LrSchedule::warmup_from(tc_.warmup, schedule_.total_steps), schedule_.total_steps);
  result_.total_steps = schedule_.total_steps;
  stamp_plan(state_);
}

// What a checkpoint records of the plan: this run's, also when it continues one whose plan
// differed (check_resumable() warned).
void Trainer::stamp_plan(TrainState& state) const {
  state.world_size = dist_env_.world_size;
  state.schedule = config::to_string(tc_.schedule);
  state.total_steps = schedule_.total_steps;
  state.warmup_steps = schedule_.warmup_steps;
  state.base_lr = tc_.lr;
  state.metric = tc_.early_stopping.metric;
  state.metric_mode = config::to_string(tc_.early_stopping.mode);
}

// Continues from the checkpoint: its whole state in one assignment, then one consistency check.
void Trainer::resume() {
  models::load_state(*model_, resumed_.model, /*strict=*/true, resume_from_ + "/model.safetensors");
  optimizer_->load_state(resumed_.optimizer);
  const TrainState planned = state_;
  state_ = resumed_.state;
  check_resumable(state_, planned, batches_per_epoch_, resume_from_);
  if (!state_.rng_cpu.empty()) set_cpu_rng_state(state_.rng_cpu);
  if (state_.early_stopping.best) {
    const fs::path dir = fs::path(config_.run.dir) / "checkpoints" /
                         ("step-" + std::to_string(state_.early_stopping.best_step));
    if (fs::exists(dir / "state.json")) best_dir_ = dir.string();
  }
  if (rank0_) truncate_metrics(metrics_path_, state_.step);
  epoch_from_start_ = state_.batch == 0;
  log::info("[train] resumed at step {}/{} (epoch {}, batch {})", state_.step, state_.total_steps,
            state_.epoch, state_.batch);
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
    state_.epoch += 1;
    state_.batch = 0;
    epoch_from_start_ = true;
    epoch_had_batch_ = false;
    train_loader_->start(state_.epoch, 0);
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
    state_.epoch += 1;
    state_.batch = 0;
    epoch_from_start_ = true;
    epoch_had_batch_ = false;
    train_loader_->start(state_.epoch, 0);
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

// DESIGN.md section 2: set-up, then for each step: batch -> step -> (log | validate |
// checkpoint | stop).
TrainResult Trainer::run() {
  check_config();
  claim_run_folder();
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
  metrics_log_.emplace(rank0_ ? metrics_path_ : std::string());
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

}  // namespace

TrainResult train(const config::Config& config, const TrainOptions& options) {
  return Trainer(config, options).run();
}

}  // namespace xmodal::train
