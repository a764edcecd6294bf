#include <unistd.h>

#include <filesystem>
#include <stdexcept>

#include "xmodal/config/loader.h"
#include "xmodal/config/pretrained.h"
#include "xmodal/core/runtime.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/import.h"
#include "xmodal/models/precision.h"
#include "xmodal/models/pretrained.h"
#include "xmodal/tasks/task.h"
#include "xmodal/train/distill.h"
#include "xmodal/train/encoder_init.h"
#include "xmodal/train/run_data.h"
#include "xmodal/train/trainer_impl.h"

namespace xmodal::train::detail {
namespace fs = std::filesystem;
// The checkpoint layer is the trainer's vocabulary (TrainState, load_checkpoint, ...).
using namespace xmodal::checkpoint;  // NOLINT(build/namespaces)

Trainer::Trainer(const config::Config& config, const TrainOptions& options)
    : config_(config),
      tc_(config_.train),
      options_(options),
      // Several processes (xmodal train --nproc N, or torchrun): each trains on its shard of
      // every batch; rank 0 alone writes the run directory (logs, metrics, checkpoints) and
      // validates.
      dist_env_(dist_env_from_environment()),
      rank0_(dist_env_.rank == 0),
      quiet_(!rank0_, log::Level::warn),
      early_stopping_(tc_.early_stopping.mode, tc_.early_stopping.patience,
                      tc_.early_stopping.min_delta) {
  // A fresh run takes the architecture details of its pretrained folders into its config.yaml,
  // so its checkpoints do not need the folders (a resumed run's config has them already).
  if (!options_.resume) config::resolve_pretrained(config_);
  result_.run_dir = config_.run.dir;
  metrics_path_ = (fs::path(config_.run.dir) / "metrics.jsonl").string();
}

// Every mistake in the config is found before a file is written (exit 2).
void Trainer::check_config() {
  config::validate(config_);
  device_ = resolve_device(config_.run.device);
  // Several processes on one machine: each on its own GPU (LOCAL_RANK), unless run.device names
  // one (cuda:N) for all of them.
  if (dist_env_.enabled() && device_.is_cuda() &&
      (config_.run.device == "auto" || config_.run.device == "cuda")) {
    const auto gpus = static_cast<int>(torch::cuda::device_count());
    device_ =
        torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(dist_env_.local_rank % gpus));
  }
  models::check_precision(tc_.precision, device_);
  const auto& m = config_.model;
  for (const auto& [key, path] :
       {std::pair<const char*, const std::string&>{"model.vision.init_from", m.vision.init_from},
        {"model.text.init_from", m.text.init_from},
        {"model.vision.pretrained", m.vision.pretrained},
        {"model.text.pretrained", m.text.pretrained},
        {"train.distill.teacher", tc_.distill.teacher}}) {
    std::error_code ec;  // a resumed run does not read them again
    const bool resumed_reads = std::string(key) == "train.distill.teacher";  // every run
    if ((!options_.resume || resumed_reads) && !path.empty() && !fs::exists(path, ec)) {
      throw std::invalid_argument(std::string(key) + ": " + path + ": no such file or folder" +
                                  " (set at " + config_.origin(key) + ")");
    }
  }
}

// The run directory: checked, claimed and locked before any work; then config.yaml and
// train.log.
void Trainer::take_run_folder() {
  const std::string& run_dir = config_.run.dir;
  ClaimedRun run = train::claim_run_folder(run_dir, options_.config_file, options_.resume, rank0_);
  lock_ = std::move(run.lock);
  resume_from_ = run.resume_from;
  const RunFolderClaim& claim = run.claim;
  const int debris = run.debris;
  if (rank0_) {
    // The user's own config.yaml in the folder stays as written (comments, includes).
    io::write_file_atomic(claim.config_path, config::dump_config(config_));
    if (claim.stale_attempt) {  // an earlier attempt that never reached a checkpoint
      std::error_code ec;
      fs::remove(metrics_path_, ec);
      truncate_tensorboard(run_dir, 0, /*remove=*/true);
    }
    if (tc_.tensorboard) tensorboard_path_ = tensorboard_file(run_dir);
  }
  log_file_.emplace(rank0_ ? (fs::path(run_dir) / "train.log").string() : std::string());
  log::info("[train] {} run {} ({} task)", options_.resume ? "resuming" : "starting", run_dir,
            config::to_string(config_.task));
  if (debris > 0) {
    log::info("[train] removed {} leftover temporary file(s) of a killed run", debris);
  }
}

// The splits, the tokenizer and the class names (a resumed run's from its checkpoint), and the
// loaders over them.
void Trainer::load_data() {
  RunData d =
      load_run_data(config_, resume_from_.empty() ? nullptr : &resumed_.files, resume_from_);
  artifacts_ = std::move(d.artifacts);
  train_data_ = std::move(d.train);
  val_data_ = std::move(d.val);
  files_ = std::move(d.files);
  auto train_options = data::loader_options(config_, true);
  train_options.rank = dist_env_.rank;
  train_options.world_size = dist_env_.world_size;
  train_loader_.emplace(train_data_, artifacts_.tokenizer, train_options);
  val_loader_.emplace(val_data_, artifacts_.tokenizer, data::loader_options(config_, false));
}

void Trainer::build_model() {
  torch::manual_seed(static_cast<uint64_t>(config_.run.seed));
  model_ = tasks::build_model(config_, {artifacts_.tokenizer->vocab_size(),
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
  if (!tc_.distill.teacher.empty()) {
    teacher_ = load_teacher(config_, artifacts_, device_);
    files_[kTeacherFile] = teacher_->record;
  }
  if (!resume_from_.empty()) {
    check_resumed_teacher(resumed_.files, teacher_ ? &*teacher_ : nullptr, resume_from_);
  }
  step_.emplace(model_, optimizer_->parameters(), config_, device_, comm_.get(),
                teacher_ ? teacher_->model : models::Model(nullptr));
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
  if (rank0_) {
    truncate_metrics(metrics_path_, state_.step);
    truncate_tensorboard(config_.run.dir, state_.step);
  }
  epoch_from_start_ = state_.batch == 0;
  log::info("[train] resumed at step {}/{} (epoch {}, batch {})", state_.step, state_.total_steps,
            state_.epoch, state_.batch);
}

}  // namespace xmodal::train::detail
