#include "xmodal/train/trainer.h"

#include <unistd.h>

#include <ATen/autocast_mode.h>
#include <torch/csrc/autograd/profiler_legacy.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/core/strings.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/eval/evaluator.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/import.h"
#include "xmodal/models/losses.h"
#include "xmodal/models/pretrained.h"
#include "xmodal/train/distributed.h"
#include "xmodal/train/early_stopping.h"
#include "xmodal/train/optimizer.h"
#include "xmodal/train/run_folder.h"

namespace xmodal::train {
namespace fs = std::filesystem;
using nlohmann::json;
using Clock = std::chrono::steady_clock;
// The checkpoint layer is the trainer's vocabulary (TrainState, load_checkpoint, ...).
using namespace xmodal::checkpoint;  // NOLINT(build/namespaces)

namespace {

std::atomic<int> g_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_signal.store(sig);
  std::signal(sig, SIG_DFL);  // a second Ctrl-C stops at once
}

// Installs the SIGINT/SIGTERM handlers for the lifetime of the training loop.
class SignalGuard {
 public:
  explicit SignalGuard(bool enabled) : enabled_(enabled) {
    g_signal.store(0);
    if (!enabled_) return;
    struct sigaction action {};
    action.sa_handler = on_stop_signal;
    sigemptyset(&action.sa_mask);
    sigaction(SIGINT, &action, &old_int_);
    sigaction(SIGTERM, &action, &old_term_);
  }
  ~SignalGuard() {
    if (!enabled_) return;
    sigaction(SIGINT, &old_int_, nullptr);
    sigaction(SIGTERM, &old_term_, nullptr);
  }
  SignalGuard(const SignalGuard&) = delete;
  SignalGuard& operator=(const SignalGuard&) = delete;

 private:
  bool enabled_;
  struct sigaction old_int_ {};
  struct sigaction old_term_ {};
};

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

// train.precision bf16 / fp16: LibTorch's autocast around the forward pass (matrix products in
// the low-precision type, reductions and losses in fp32); nothing for fp32.
class AutocastGuard {
 public:
  AutocastGuard(config::Precision precision, const c10::Device& device) {
    if (precision == config::Precision::fp32) return;
    const auto dtype = precision == config::Precision::bf16 ? at::kBFloat16 : at::kHalf;
    cuda_ = device.is_cuda();
    if (cuda_) {
      was_enabled_ = at::autocast::is_enabled();
      was_dtype_ = at::autocast::get_autocast_gpu_dtype();
      at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(true);
    } else {
      was_enabled_ = at::autocast::is_cpu_enabled();
      was_dtype_ = at::autocast::get_autocast_cpu_dtype();
      at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(true);
    }
    at::autocast::increment_nesting();
    active_ = true;
  }
  /// Leaves autocast (before backward).
  void reset() {
    if (!active_) return;
    if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
    if (cuda_) {
      at::autocast::set_enabled(was_enabled_);
      at::autocast::set_autocast_gpu_dtype(was_dtype_);
    } else {
      at::autocast::set_cpu_enabled(was_enabled_);
      at::autocast::set_autocast_cpu_dtype(was_dtype_);
    }
    active_ = false;
  }
  ~AutocastGuard() { reset(); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false, cuda_ = false, was_enabled_ = false;
  at::ScalarType was_dtype_ = at::kFloat;
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

// Appends one JSON object per line to metrics.jsonl, flushed at once.
class MetricsLog {
 public:
  /// An empty path writes nothing (the processes other than rank 0 of a distributed run).
  explicit MetricsLog(const std::string& path)
      : path_(path), file_(path.empty() ? nullptr : std::fopen(path.c_str(), "a")) {
    if (!path.empty() && !file_) throw std::runtime_error("cannot open " + path + " for appending");
  }
  ~MetricsLog() {
    if (file_) std::fclose(file_);
  }
  MetricsLog(const MetricsLog&) = delete;
  MetricsLog& operator=(const MetricsLog&) = delete;
  void write(const json& record) {
    if (!file_) return;
    const std::string line = record.dump() + "\n";
    if (std::fwrite(line.data(), 1, line.size(), file_) != line.size() || std::fflush(file_) != 0) {
      throw std::runtime_error("cannot write " + path_);
    }
  }

 private:
  std::string path_;
  std::FILE* file_;
};

json metrics_json(const std::map<std::string, double>& metrics) {
  json j = json::object();
  for (const auto& [k, v] : metrics) j[k] = std::isfinite(v) ? json(v) : json(nullptr);
  return j;
}

std::string format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "?";
  const auto s = static_cast<int64_t>(seconds + 0.5);
  char text[32];
  if (s >= 3600) {
    std::snprintf(text, sizeof text, "%ldh%02ldm", static_cast<long>(s / 3600),
                  static_cast<long>(s / 60 % 60));
  } else {
    std::snprintf(text, sizeof text, "%ldm%02lds", static_cast<long>(s / 60),
                  static_cast<long>(s % 60));
  }
  return text;
}

std::string format_metrics(const std::map<std::string, double>& metrics) {
  std::string text;
  for (const auto& [k, v] : metrics) {
    if (!text.empty()) text += " ";
    text += fmt::format("{} {:.4f}", k, v);
  }
  return text;
}

models::Task model_task(config::Task task) {
  switch (task) {
    case config::Task::vqa:
      return models::Task::vqa;
    case config::Task::counting:
      return models::Task::counting;
    case config::Task::classify:
      return models::Task::classify;
  }
  return models::Task::vqa;
}

// model.{vision,text}.init_from: loads each named encoder from an earlier run and logs what
// was loaded, interpolated, missing or unexpected.
void init_encoders(models::ModelImpl& model, const config::Config& config) {
  for (const auto& [component, dir] :
       {std::pair<std::string, std::string>{"vision", config.model.vision.pretrained},
        {"text", config.model.text.pretrained}}) {
    if (dir.empty()) continue;
    const bool vision = component == "vision";
    if (vision ? model.vision.is_empty() : model.text.is_empty()) {
      log::warn("[init] model.{}.pretrained ignored: this model (fusion mode {}) has no {} encoder",
                component, config::to_string(config.model.fusion.mode), component);
      continue;
    }
    models::PretrainedReport r;
    try {
      r = vision ? models::load_pretrained_vit(*model.vision, dir)
                 : models::load_pretrained_bert(*model.text, dir);
    } catch (const std::invalid_argument& e) {  // a mistake in the config stays exit 2
      throw std::invalid_argument("model." + component + ".pretrained: " + e.what());
    } catch (const std::exception& e) {
      throw std::runtime_error("model." + component + ".pretrained: " + e.what());
    }
    log::info("[init] {}: {} tensors from {}{}{}{}", component, r.loaded, r.file,
              r.interpolated_positions ? "; position embeddings interpolated" : "",
              r.missing.empty() ? "" : "; missing (left as initialised): " + join(r.missing, ", "),
              r.unused.empty() ? "" : "; unused: " + join(r.unused, ", "));
  }
  for (const auto& [component, from] :
       {std::pair<std::string, std::string>{"vision", config.model.vision.init_from},
        {"text", config.model.text.init_from}}) {
    if (from.empty()) continue;
    const bool present = component == "vision" ? !model.vision.is_empty() : !model.text.is_empty();
    if (!present) {
      log::warn("[init] model.{}.init_from ignored: this model (fusion mode {}) has no {} encoder",
                component, config::to_string(config.model.fusion.mode), component);
      continue;
    }
    InitReport init;
    try {
      init = init_component(model, component, from);
    } catch (const std::invalid_argument& e) {  // a mistake in the config stays exit 2
      throw std::invalid_argument("model." + component + ".init_from: " + e.what());
    } catch (const std::exception& e) {
      throw std::runtime_error("model." + component + ".init_from: " + e.what());
    }
    const auto listed = [](const char* what, const std::vector<std::string>& names) {
      return names.empty() ? std::string() : std::string("; ") + what + ": " + join(names, ", ");
    };
    log::info("[init] {}: {} tensors from {}{}{}{}", component, init.loaded, init.checkpoint,
              listed("interpolated", init.interpolated),
              listed("missing (left as initialised)", init.missing),
              listed("unexpected (ignored)", init.unexpected));
  }
}

// Fails early, with the path, when the run directory cannot be written.
void prepare_run_dir(const std::string& run_dir) {
  std::error_code ec;
  fs::create_directories(run_dir, ec);
  if (ec) throw std::runtime_error("run directory " + run_dir + ": cannot create: " + ec.message());
  if (::access(run_dir.c_str(), W_OK) != 0) {
    throw std::runtime_error("run directory " + run_dir + ": not writable");
  }
}

}  // namespace

void truncate_metrics(const std::string& path, int64_t step) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return;
  std::istringstream in(io::read_file(path));
  std::string kept, line;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    try {
      const json record = json::parse(line);
      if (!record.is_object()) continue;
      // Only an integer step is compared: get<int64_t>() of a double such as 1e79 is undefined.
      const auto at = record.find("step");
      if (at == record.end() || (at->is_number_integer() && at->get<int64_t>() <= step)) {
        kept += line + "\n";
      }
    } catch (const json::exception&) {
      // A partial last line from a killed writer.
    }
  }
  io::write_file_atomic(path, kept);
}

TrainResult train(const config::Config& input_config, const TrainOptions& options) {
  const auto started = Clock::now();
  // A fresh run takes the architecture details of its pretrained folders into its config.yaml,
  // so its checkpoints do not need the folders (a resumed run's config has them already).
  config::Config config = input_config;
  if (!options.resume) models::resolve_pretrained(config);
  const config::TrainConfig& tc = config.train;
  TrainResult result;
  result.run_dir = config.run.dir;
  const std::string& run_dir = config.run.dir;
  // Several processes (xmodal train --nproc N, or torchrun): each trains on its shard of every
  // batch; rank 0 alone writes the run directory (logs, metrics, checkpoints) and validates.
  const DistEnv dist_env = dist_env_from_environment();
  const bool rank0 = dist_env.rank == 0;
  std::optional<log::Level> quiet;
  if (!rank0) quiet = log::Level::warn;
  LevelGuard level_guard(quiet);

  // ---- config and device: every mistake found before a file is written (exit 2) ----
  config::validate(config);
  const c10::Device device = resolve_device(config.run.device);
  if (tc.precision == config::Precision::bf16 && !device.is_cuda()) {
    // LibTorch 1.13's CPU autocast fails in this model's backward bookkeeping ("expected scalar
    // type BFloat16 but found Float" saving index_select's input). A bf16 path of xmodal's own
    // was measured instead (2026-12-01, AMD EPYC Zen 4 with avx512_bf16, 2 threads): the
    // transformer blocks' Linear products in bf16 through oneDNN (fp32 master weights, bias
    // and everything else fp32). bf16 products ran at ~410-430 GFLOP/s against ~200-230 for
    // fp32, the quickstart trained at 333 samples/s against 303 (+10%), but validation
    // accuracy fell from 73.93% to 72.90% and test from 73.77% to 72.57%: more than the 0.5
    // points allowed, so it is refused (README, CPU kernels). run.device cpu is refused by
    // validate(); this is run.device auto on a machine without CUDA.
    throw std::invalid_argument(
        "train.precision bf16 is not supported on the CPU yet (LibTorch 1.13's CPU autocast "
        "fails in this model's backward); use fp32");
  }

  for (const auto& [key, path] : {std::pair<const char*, const std::string&>{
                                      "model.vision.init_from", config.model.vision.init_from},
                                  {"model.text.init_from", config.model.text.init_from},
                                  {"model.vision.pretrained", config.model.vision.pretrained},
                                  {"model.text.pretrained", config.model.text.pretrained}}) {
    std::error_code ec;  // a resumed run does not read them again
    if (!options.resume && !path.empty() && !fs::exists(path, ec)) {
      throw std::invalid_argument(std::string(key) + ": " + path + ": no such file or folder" +
                                  " (set at " + config.origin(key) + ")");
    }
  }

  // ---- run directory: checked, claimed and locked before any work ----
  RunFolderClaim claim;
  std::optional<RunFolderLock> lock;
  if (rank0) {
    claim = check_run_folder(run_dir, options.config_file, options.resume);
    prepare_run_dir(run_dir);
    lock.emplace(run_dir);  // a second `train` on this folder fails here, naming this PID
  }
  const int debris = rank0 ? remove_debris(run_dir) : 0;
  const auto existing = checkpoint_steps(run_dir);
  std::string resume_from;
  if (options.resume) {
    resume_from = latest_checkpoint(run_dir);
    if (resume_from.empty()) {
      throw std::runtime_error("run directory " + run_dir + ": no complete checkpoint to resume" +
                               (existing.empty() ? "" : " (every checkpoint failed to load)"));
    }
  } else if (!existing.empty()) {
    throw std::invalid_argument(
        "run directory " + run_dir + " already holds a run (checkpoints/step-" +
        std::to_string(existing.back()) + "); continue it with `xmodal train --resume " + run_dir +
        "` or choose another --run-dir");
  }
  if (rank0) {
    // The user's own config.yaml in the folder stays as written (comments, includes).
    io::write_file_atomic(claim.config_path, config::dump_config(config));
    if (claim.stale_attempt) {  // an earlier attempt that never reached a checkpoint
      std::error_code ec;
      fs::remove(fs::path(run_dir) / "metrics.jsonl", ec);
    }
  }
  LogFileGuard log_file(rank0 ? (fs::path(run_dir) / "train.log").string() : std::string());
  log::info("[train] {} run {} ({} task)", options.resume ? "resuming" : "starting", run_dir,
            config::to_string(config.task));
  if (debris > 0)
    log::info("[train] removed {} leftover temporary file(s) of a killed run", debris);
  const int compute_threads = configure_threads(config.run.threads);
  log_runtime_summary();
  std::unique_ptr<Communicator> comm;
  if (dist_env.enabled()) {
    comm = std::make_unique<Communicator>(dist_env, config.dist, device);
    log::info("[dist] rank {} of {} ({}), batch {} per process, {} in all", dist_env.rank,
              dist_env.world_size, comm->backend(), tc.batch_size,
              tc.batch_size * dist_env.world_size);
  }

  // ---- resume state ----
  CheckpointContent resumed;
  if (!resume_from.empty()) {
    log::info("[train] loading {}", resume_from);
    resumed = load_checkpoint(resume_from, {/*optimizer=*/true});
  }

  // ---- data ----
  Artifacts artifacts;
  std::optional<data::AnswerVocab> answers;
  if (!resume_from.empty()) {
    artifacts = artifacts_from_files(config, resumed.files, resume_from);
    if (config.task == config::Task::vqa) answers.emplace(artifacts.class_names);
  }
  auto train_data = std::make_shared<data::TaskData>(
      data::load_split(config, config.data.train_split, answers ? &*answers : nullptr));
  if (!answers && config.task == config::Task::vqa) answers.emplace(train_data->class_names);
  if (train_data->examples.empty()) {
    throw std::runtime_error("training split " + config.data.train_split + " of " +
                             config.data.root + " has no examples");
  }
  auto val_data = std::make_shared<data::TaskData>(
      data::load_split(config, config.data.val_split, answers ? &*answers : nullptr));
  if (!artifacts.tokenizer) {
    std::vector<std::string> texts;
    if (config.tokenizer.type == config::TokenizerType::word) {
      for (const auto& e : train_data->examples)
        texts.insert(texts.end(), e.texts.begin(), e.texts.end());
    }
    artifacts.tokenizer = make_tokenizer(config, texts);
    artifacts.class_names = train_data->class_names;
    artifacts.aux_class_names = train_data->aux_class_names;
  }
  if (artifacts.aux_class_names != train_data->aux_class_names) {
    throw std::runtime_error("train.aux: the categories of " + config.data.root +
                             " differ from the checkpoint's");
  }
  log::info("[data] {}: {} examples, val: {} examples, {} classes, vocabulary {} tokens",
            config.data.train_split, train_data->examples.size(), val_data->examples.size(),
            artifacts.class_names.size(), artifacts.tokenizer->vocab_size());
  const auto files = artifact_files(config, artifacts);

  auto train_options = data::loader_options(config, true);
  train_options.rank = dist_env.rank;
  train_options.world_size = dist_env.world_size;
  data::Loader train_loader(train_data, artifacts.tokenizer, train_options);
  data::Loader val_loader(val_data, artifacts.tokenizer, data::loader_options(config, false));

  // ---- model and optimizer ----
  torch::manual_seed(static_cast<uint64_t>(config.run.seed));
  models::Model model =
      models::build_model(config, {artifacts.tokenizer->vocab_size(),
                                   static_cast<int64_t>(artifacts.class_names.size()),
                                   static_cast<int64_t>(artifacts.aux_class_names.size())});
  model->to(device);
  model->train();
  log::info("[model] {} parameters\n{}", models::count_parameters(*model),
            models::describe_model(*model));
  if (resume_from.empty()) init_encoders(*model, config);
  if (comm) {  // every process starts from rank 0's weights
    std::vector<torch::Tensor> tensors;
    for (auto& p : model->parameters()) tensors.push_back(p.detach());
    for (auto& b : model->buffers()) tensors.push_back(b);
    comm->broadcast(tensors);
  }
  AdamW optimizer(
      make_param_groups(*model, tc.weight_decay,
                        {tc.vision_lr_mult, tc.text_lr_mult, tc.fusion_lr_mult, tc.head_lr_mult}),
      AdamWOptions{tc.adam_beta1, tc.adam_beta2, tc.adam_eps});
  const auto params = optimizer.parameters();

  const int64_t batches_per_epoch = train_loader.batches_per_epoch();
  const int64_t steps_per_epoch = (batches_per_epoch + tc.grad_accum - 1) / tc.grad_accum;
  LrSchedule schedule;
  schedule.kind = tc.schedule;
  schedule.total_steps = tc.max_steps > 0 ? tc.max_steps : tc.epochs * steps_per_epoch;
  // max_steps and epochs both 0 is refused by validate(); steps_per_epoch >= 1 (data checked).
  schedule.warmup_steps =
      std::min(LrSchedule::warmup_from(tc.warmup, schedule.total_steps), schedule.total_steps);
  result.total_steps = schedule.total_steps;

  const auto& es_config = tc.early_stopping;
  EarlyStopping early_stopping(es_config.mode, es_config.patience, es_config.min_delta);
  TrainState state;
  state.world_size = dist_env.world_size;
  state.schedule = config::to_string(tc.schedule);
  state.total_steps = schedule.total_steps;
  state.warmup_steps = schedule.warmup_steps;
  state.base_lr = tc.lr;
  state.metric = es_config.metric;
  state.metric_mode = config::to_string(es_config.mode);
  std::string best_dir;
  const std::string metrics_path = (fs::path(run_dir) / "metrics.jsonl").string();

  if (!resume_from.empty()) {
    models::load_state(*model, resumed.model, /*strict=*/true, resume_from + "/model.safetensors");
    optimizer.load_state(resumed.optimizer);
    const TrainState saved = resumed.state;
    if (saved.total_steps != state.total_steps || saved.warmup_steps != state.warmup_steps ||
        saved.schedule != state.schedule || saved.base_lr != state.base_lr) {
      log::warn(
          "[train] the schedule differs from the checkpoint's ({} steps, warmup {}, {}, lr "
          "{}): the resumed run will not match an uninterrupted one",
          saved.total_steps, saved.warmup_steps, saved.schedule, saved.base_lr);
    }
    if (saved.world_size != dist_env.world_size) {
      throw std::invalid_argument(
          "checkpoint " + resume_from + " was written by a run of " +
          std::to_string(saved.world_size) + " process(es); resume it with the same number (" +
          (saved.world_size > 1 ? "--nproc " + std::to_string(saved.world_size)
                                : std::string("no --nproc")) +
          "): its data position counts batches of batch_size x processes. To continue with "
          "another number, start a new run from its weights (model.vision.init_from / "
          "model.text.init_from)");
    }
    state.step = saved.step;
    state.epoch = saved.epoch;
    if (saved.batch < 0 || saved.batch > batches_per_epoch) {  // state.json edited or corrupt
      throw std::runtime_error("checkpoint " + resume_from + ": its data position (batch " +
                               std::to_string(saved.batch) + ") is outside the epoch of " +
                               std::to_string(batches_per_epoch) +
                               " batches; the data set or train.batch_size changed, or "
                               "state.json is damaged");
    }
    state.batch = saved.batch;
    state.samples_seen = saved.samples_seen;
    state.elapsed_seconds = saved.elapsed_seconds;
    state.last_lr = saved.last_lr;
    state.last_metrics = saved.last_metrics;
    state.last_eval_step = saved.last_eval_step;
    early_stopping.state = saved.early_stopping;
    if (!saved.rng_cpu.empty()) set_cpu_rng_state(saved.rng_cpu);
    if (early_stopping.state.best) {
      const fs::path dir = fs::path(run_dir) / "checkpoints" /
                           ("step-" + std::to_string(early_stopping.state.best_step));
      if (fs::exists(dir / "state.json")) best_dir = dir.string();
    }
    if (rank0) truncate_metrics(metrics_path, state.step);
    log::info("[train] resumed at step {}/{} (epoch {}, batch {})", state.step, state.total_steps,
              state.epoch, state.batch);
  }
  MetricsLog metrics_log(rank0 ? metrics_path : std::string());

  log::info(
      "[train] {} steps ({} per epoch of {} batches of {}, accumulating {}), warmup {}, {} "
      "decay, lr {}, weight decay {}",
      schedule.total_steps, steps_per_epoch, batches_per_epoch, tc.batch_size, tc.grad_accum,
      schedule.warmup_steps, state.schedule, tc.lr, tc.weight_decay);

  const models::Task task = model_task(config.task);
  const models::LossWeights weights{tc.loss.presence_weight, tc.loss.count_weight};

  // ---- helpers of the loop ----
  const auto save = [&](bool improved) {
    if (!rank0) return;
    state.rng_cpu = cpu_rng_state();
    state.early_stopping = early_stopping.state;
    CheckpointContent content;
    content.state = state;
    content.model = state_tensors(*model);
    content.optimizer = optimizer.state();
    content.files = files;
    const std::string dir = write_checkpoint(run_dir, content);
    set_pointer(run_dir, "last", dir);
    if (improved) {
      best_dir = dir;
      set_pointer(run_dir, "best", dir);
    }
    std::vector<int64_t> keep;
    if (early_stopping.state.best) keep.push_back(early_stopping.state.best_step);
    prune_checkpoints(run_dir, tc.keep_last, keep);
    result.last_checkpoint = dir;
    log::info("[checkpoint] step {} -> {}{}", state.step, dir, improved ? " (best)" : "");
  };
  const auto validate = [&]() -> bool {
    auto r =
        eval::evaluate(model, *val_data, val_loader, weights, device, config.eval.vqa_protocol);
    state.last_metrics = r.metrics;
    state.last_eval_step = state.step;
    const auto it = r.metrics.find(es_config.metric);
    const double value = it == r.metrics.end() ? std::nan("") : it->second;
    const bool improved = early_stopping.update(value, state.step);
    log::info("[eval] step {} {} ({} examples, {:.1f} s): {}{}", state.step, config.data.val_split,
              r.examples, r.seconds, format_metrics(r.metrics), improved ? "  (best)" : "");
    json record = {{"event", "eval"},      {"step", state.step},
                   {"epoch", state.epoch}, {"split", config.data.val_split},
                   {"seconds", r.seconds}, {"metrics", metrics_json(r.metrics)},
                   {"best", improved}};
    metrics_log.write(record);
    return improved;
  };

  // ---- the loop ----
  SignalGuard signals(options.handle_signals);
  train_loader.start(state.epoch, state.batch);
  int64_t steps_this_process = 0;
  int64_t samples_this_process = 0;
  double interval_loss = 0;
  int64_t interval_steps = 0, interval_samples = 0;
  auto interval_start = Clock::now();
  const auto loop_start = Clock::now();
  double elapsed_base = state.elapsed_seconds;
  bool interrupted = false;
  // Seconds the loop waited for the loader, and spent validating and checkpointing.
  double data_wait_s = 0, interval_wait_s = 0, paused_s = 0;

  // XMODAL_PROFILE=FILE: a Chrome trace of training steps 11..20 (every LibTorch op, forward
  // and backward) for performance work; scripts/bench/profile_summary.py summarises it.
  const char* profile_path = std::getenv("XMODAL_PROFILE");
  std::unique_ptr<torch::autograd::profiler::RecordProfile> profile;
  if (early_stopping.should_stop()) {
    // resumed from the checkpoint an early stop wrote (the process died before it exited):
    // the run is over, as the uninterrupted one would be
    log::info(
        "[train] the run stopped early at step {} (val {} best {:.4f} at step {}); "
        "nothing left to train",
        state.step, es_config.metric, early_stopping.state.best.value_or(std::nan("")),
        early_stopping.state.best_step);
    result.stopped_early = true;
  }
  bool epoch_from_start = state.batch == 0, epoch_had_batch = false;
  while (state.step < schedule.total_steps && !early_stopping.should_stop()) {
    if (profile_path != nullptr && steps_this_process == 10) {
      profile = std::make_unique<torch::autograd::profiler::RecordProfile>(profile_path);
    }
    if (profile && steps_this_process == 20) {
      profile.reset();
      log::info("[train] profile of steps 11-20 written to {}", profile_path);
    }
    std::vector<data::Batch> group;
    const auto wait_start = Clock::now();
    while (static_cast<int>(group.size()) < tc.grad_accum) {
      auto batch = train_loader.next();
      if (!batch) break;
      group.push_back(std::move(*batch));
    }
    const double waited = std::chrono::duration<double>(Clock::now() - wait_start).count();
    data_wait_s += waited;
    interval_wait_s += waited;
    if (group.empty()) {                           // the epoch had no batch left
      if (epoch_from_start && !epoch_had_batch) {  // data.max_bad_share 1 and nothing readable
        throw std::runtime_error("[data] every sample of epoch " + std::to_string(state.epoch) +
                                 " of " + config.data.train_split +
                                 " was bad and skipped: nothing to train on");
      }
      epoch_from_start = true;
      epoch_had_batch = false;
      state.epoch += 1;
      state.batch = 0;
      train_loader.start(state.epoch, 0);
      continue;
    }
    epoch_had_batch = true;
    const bool epoch_done = train_loader.position().batch >= batches_per_epoch;
    // A loaded encoder stays fixed for its first freeze_steps steps: no gradient, no update.
    for (const auto& [encoder, steps] :
         {std::pair<torch::nn::Module*, int64_t>{model->vision ? model->vision.get() : nullptr,
                                                 config.model.vision.freeze_steps},
          {model->text ? model->text.get() : nullptr, config.model.text.freeze_steps}}) {
      if (encoder == nullptr || steps == 0) continue;
      const bool trainable = state.step >= steps;
      for (auto& p : encoder->parameters()) p.requires_grad_(trainable);
    }

    int64_t group_samples = 0;
    for (const auto& b : group) group_samples += b.size();
    if (comm) {  // the loss is a mean over the samples of all processes
      auto n = torch::tensor({static_cast<double>(group_samples)}, torch::kFloat64);
      comm->all_reduce_sum(n);
      group_samples = static_cast<int64_t>(n.item<double>());
    }
    double loss_sum = 0;
    int step_signal = 0;  // a stop request all processes agree on (distributed)
    for (const auto& b : group) {
      AutocastGuard autocast(tc.precision, device);
      const auto out =
          model->forward(b.images.to(device), b.input_ids.to(device), b.attention_mask.to(device),
                         b.token_type_ids.to(device), b.image_index.to(device));
      const torch::Tensor crowd = b.crowd.defined() ? b.crowd.to(device) : torch::Tensor();
      auto sums = models::task_loss(task, out, b.targets.to(device), crowd, weights);
      if (out.aux_presence.defined() && b.aux_counts.defined()) {
        const auto aux = models::counting_loss(out.aux_presence, out.aux_counts,
                                               b.aux_counts.to(device), {}, {});
        sums.total = sums.total + aux.total * tc.aux.counting;
      }
      if (out.aux_dense.defined() && b.aux_dense.defined()) {
        sums.total =
            sums.total + models::dense_loss(out.aux_dense, b.aux_dense.to(device)) * tc.aux.dense;
      }
      const double value = sums.total.item<double>();
      if (!std::isfinite(value)) {
        loss_sum = value;
        break;
      }
      autocast.reset();
      (sums.total / static_cast<double>(group_samples)).backward();
      loss_sum += value;
    }
    if (comm) {
      // The loss of all processes (a non-finite one anywhere stops them all at the same step),
      // whether any process was asked to stop, then the gradients.
      auto shared = torch::tensor({loss_sum, g_signal.load() != 0 ? 1.0 : 0.0}, torch::kFloat64);
      comm->all_reduce_sum(shared);
      loss_sum = shared[0].item<double>();
      if (shared[1].item<double>() > 0)
        step_signal = g_signal.load() != 0 ? g_signal.load() : SIGTERM;
      if (std::isfinite(loss_sum)) comm->all_reduce_gradients(params);
    }
    const double loss = loss_sum / static_cast<double>(group_samples);
    const double grad_norm = std::isfinite(loss) ? clip_grad_norm(params, tc.grad_clip) : loss;
    if (!std::isfinite(loss) || !std::isfinite(grad_norm)) {
      const std::string what = !std::isfinite(loss) ? "loss" : "gradient norm";
      const double bad = !std::isfinite(loss) ? loss : grad_norm;
      std::string last =
          result.last_checkpoint.empty() ? latest_checkpoint(run_dir) : result.last_checkpoint;
      throw std::runtime_error("step " + std::to_string(state.step + 1) + ": " + what + " is " +
                               (std::isnan(bad) ? "nan" : "inf") + " (epoch " +
                               std::to_string(state.epoch) +
                               "); stopped without updating the weights; " +
                               (last.empty() ? std::string("no checkpoint was written yet")
                                             : "the last good checkpoint is " + last) +
                               " (try a lower train.lr or train.grad_clip)");
    }
    const double lr = tc.lr * schedule.factor(state.step + 1);
    optimizer.step(lr);
    optimizer.zero_grad();

    state.step += 1;
    ++steps_this_process;
    samples_this_process += group_samples;
    state.samples_seen += group_samples;
    state.last_lr = lr;
    if (epoch_done) {
      state.epoch += 1;
      state.batch = 0;
      epoch_from_start = true;
      epoch_had_batch = false;
      train_loader.start(state.epoch, 0);
    } else {
      state.batch = train_loader.position().batch;
    }
    state.elapsed_seconds =
        elapsed_base + std::chrono::duration<double>(Clock::now() - loop_start).count();
    result.losses.push_back(loss);
    interval_loss += loss;
    interval_steps += 1;
    interval_samples += group_samples;

    const bool last_step = state.step >= schedule.total_steps;
    if (state.step % tc.log_every == 0 || last_step) {
      const double secs = std::chrono::duration<double>(Clock::now() - interval_start).count();
      const double rate = secs > 0 ? interval_samples / secs : 0.0;
      const double eta =
          interval_steps > 0 ? secs / interval_steps * (schedule.total_steps - state.step) : 0.0;
      log::info(
          "[train] step {}/{} epoch {} loss {:.4f} lr {:.3g} grad {:.3g} {:.0f} samples/s "
          "(data wait {:.0f}%) ETA {}",
          state.step, schedule.total_steps, state.epoch, interval_loss / interval_steps, lr,
          grad_norm, rate, secs > 0 ? 100.0 * interval_wait_s / secs : 0.0, format_duration(eta));
      metrics_log.write({{"event", "train"},
                         {"step", state.step},
                         {"epoch", state.epoch},
                         {"loss", interval_loss / interval_steps},
                         {"lr", lr},
                         {"grad_norm", grad_norm},
                         {"samples_per_s", rate},
                         {"data_wait_s", interval_wait_s},
                         {"elapsed_s", state.elapsed_seconds}});
      interval_loss = 0;
      interval_steps = 0;
      interval_samples = 0;
      interval_wait_s = 0;
      interval_start = Clock::now();
    }

    const auto pause_start = Clock::now();  // validation and checkpoints are not training time
    const bool eval_due = (tc.eval_every > 0 && state.step % tc.eval_every == 0) ||
                          (tc.eval_every == 0 && epoch_done) || last_step;
    bool improved = false;
    bool stop_early = false;
    if (eval_due) {
      if (rank0) {
        improved = validate();
        stop_early = early_stopping.should_stop();
      }
      if (comm) {  // rank 0 validated: every process follows its decisions
        auto flags = torch::tensor({improved ? 1.0 : 0.0, stop_early ? 1.0 : 0.0}, torch::kFloat64);
        comm->broadcast({flags}, /*timeout_s=*/7 * 24 * 3600.0);
        improved = flags[0].item<double>() > 0;
        stop_early = flags[1].item<double>() > 0;
      }
    }
    const int signal = comm ? step_signal : g_signal.load();
    const bool stop_requested = signal != 0 || (options.stop_after_steps > 0 &&
                                                steps_this_process >= options.stop_after_steps);
    const bool checkpoint_due =
        (tc.checkpoint_every > 0 && state.step % tc.checkpoint_every == 0) ||
        (tc.checkpoint_every == 0 && epoch_done) || improved || last_step || stop_early ||
        stop_requested;
    if (checkpoint_due) save(improved);
    interval_start += Clock::now() - pause_start;
    paused_s += std::chrono::duration<double>(Clock::now() - pause_start).count();
    if (stop_early) {
      log::info(
          "[train] early stopping: val {} did not improve by more than {} for {} "
          "evaluations (best {:.4f} at step {})",
          es_config.metric, es_config.min_delta, early_stopping.state.bad_evals,
          early_stopping.state.best.value_or(std::nan("")), early_stopping.state.best_step);
      result.stopped_early = true;
      break;
    }
    if (stop_requested) {
      interrupted = true;
      result.signal = signal;
      log::info(
          "[train] {} at step {}/{}; checkpoint written. Resume with: xmodal train --resume {}",
          signal == SIGINT    ? "interrupted (SIGINT)"
          : signal == SIGTERM ? "terminated (SIGTERM)"
                              : "stopped",
          state.step, schedule.total_steps, run_dir);
      break;
    }
  }

  // ---- summary ----
  result.step = state.step;
  result.epoch = state.epoch;
  result.interrupted = interrupted;
  result.best_checkpoint = best_dir;
  result.best_metric = early_stopping.state.best;
  result.best_step = early_stopping.state.best_step;
  result.last_metrics = state.last_metrics;
  result.seconds = std::chrono::duration<double>(Clock::now() - started).count();
  // Training time: the loop without validation and checkpoints (loader waits included).
  const double train_secs =
      std::chrono::duration<double>(Clock::now() - loop_start).count() - paused_s;
  result.samples_per_second =
      train_secs > 0 ? static_cast<double>(samples_this_process) / train_secs : 0.0;
  const double loader_cpu_s = train_loader.cpu_seconds();
  const double loader_share =
      train_secs > 0 ? loader_cpu_s / (train_secs * std::max(1, compute_threads)) : 0.0;
  const data::Loader::CacheStats cache = train_loader.cache_stats();
  if (!interrupted) {
    metrics_log.write({{"event", "end"},
                       {"step", state.step},
                       {"samples", samples_this_process},
                       {"batches_per_epoch", batches_per_epoch},
                       {"train_s", train_secs},
                       {"data_wait_s", data_wait_s},
                       // the training loader's own CPU time (its threads' clocks), and the
                       // share of the cores' time over the loop it took
                       {"loader_cpu_s", loader_cpu_s},
                       {"loader_cpu_share", loader_share},
                       {"image_cache",
                        {{"images", cache.images},
                         {"mib", static_cast<double>(cache.bytes) / (1 << 20)},
                         {"hits", cache.hits},
                         {"misses", cache.misses}}},
                       {"samples_per_s", result.samples_per_second},
                       {"epoch", state.epoch},
                       {"stopped_early", result.stopped_early},
                       {"best_step", result.best_step},
                       {"best", result.best_metric ? json(*result.best_metric) : json(nullptr)},
                       {"elapsed_s", state.elapsed_seconds}});
    log::info(
        "[train] done: {} steps in {} ({:.0f} samples/s, data wait {:.1f}%, loader CPU {:.1f}% "
        "of the cores); best val {} {} at step {} -> {} (also {}/best)",
        state.step, format_duration(state.elapsed_seconds), result.samples_per_second,
        train_secs > 0 ? 100.0 * data_wait_s / train_secs : 0.0, 100.0 * loader_share,
        es_config.metric, result.best_metric ? fmt::format("{:.4f}", *result.best_metric) : "n/a",
        result.best_step, best_dir.empty() ? "-" : best_dir, run_dir);
  }
  return result;
}

}  // namespace xmodal::train
