// One way to open a trained model for inference (STYLE.md "Results, tasks and services"):
// predict, explain and serve (through Predictor), eval, eval --zero-shot, embed, index, search,
// the ceiling and quantize all open their checkpoint here, so that every command applies
// --set, validates, sets the threads, picks the device and quantizes the same way.
//
//   auto s = infer::Session::open({checkpoint, overrides, "predict"});
//   s.loaded.model->forward(pixels.to(s.device), ...);
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/config.h"

namespace xmodal::infer {

struct SessionOptions {
  SessionOptions(std::string checkpoint, std::vector<std::string> overrides, std::string purpose)
      : checkpoint(std::move(checkpoint)),
        overrides(std::move(overrides)),
        purpose(std::move(purpose)) {}

  /// A checkpoint directory, a `best`/`last` link or a run directory.
  std::string checkpoint;
  /// Config assignments applied to the checkpoint's config (run.threads, run.device,
  /// eval.quantize, ...), as `--set` gives them.
  std::vector<std::string> overrides;
  /// The command that opens the model ("predict", "index", ...), named in errors and the log.
  std::string purpose;
  /// Called with the checkpoint as stored, before the overrides, validation, threads and device:
  /// the caller's requirement of the model (index: require_retrieval()); throws to refuse it.
  std::function<void(const checkpoint::LoadedModel&)> check;
  /// Instead of eval.quantize (xmodal quantize: int8, whatever the config says).
  std::optional<config::Quantize> quantize;
  /// Instead of run.device (xmodal quantize writes a CPU model; the ceiling labels on the CPU).
  std::optional<c10::Device> device;
};

/// A checkpoint opened for inference.
struct Session {
  /// The model with its artifacts; its config with the overrides applied, the model on
  /// `device`, quantized as asked, in eval mode.
  checkpoint::LoadedModel loaded;
  c10::Device device = c10::Device(c10::kCPU);
  /// The floating-point type the model computes in: eval.precision (bf16: the model's
  /// compute_dtype, autocast around its forward; outputs stay fp32). Retrieval's embeddings
  /// (embed, index, search) run the encoders directly, in fp32.
  config::Precision precision = config::Precision::fp32;

  /// checkpoint::load_trained_model -> options.check -> config::apply_overrides ->
  /// config::validate -> configure_threads(run.threads) -> resolve_device(run.device) ->
  /// checkpoint::quantize_model(eval.quantize) -> models::check_precision(eval.precision) ->
  /// the model to the device, eval mode, its compute_dtype.
  /// Throws std::invalid_argument for no checkpoint, ConfigError (a std::invalid_argument) for
  /// bad overrides or a config that does not validate, std::runtime_error for an unreadable
  /// checkpoint, a CUDA device that is not there or an int8 model off the CPU, and whatever
  /// `check` throws.
  static Session open(const SessionOptions& options);
};

}  // namespace xmodal::infer
