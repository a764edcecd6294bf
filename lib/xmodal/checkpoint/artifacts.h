// What makes a checkpoint self-describing besides its weights: the resolved config, the
// tokenizer vocabulary and the class names (answers or categories). Written into every
// checkpoint directory; eval, predict and resume read them back from there alone.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/models/model.h"
#include "xmodal/text/tokenizer.h"

namespace xmodal::checkpoint {

struct Artifacts {
  std::shared_ptr<const text::Tokenizer> tokenizer;
  std::vector<std::string> class_names;
  std::vector<std::string> aux_class_names;  ///< auxiliary counting categories (may be empty)
};

/// The artifact files of a checkpoint: config.yaml, the tokenizer's files() (vocab.txt for word
/// and wordpiece, tokenizer.model for sentencepiece; text/factory.h), classes.txt and,
/// with an auxiliary counting head, aux_classes.txt.
std::map<std::string, std::string> artifact_files(const config::Config& config,
                                                  const Artifacts& artifacts);

/// Reads the artifacts back from those files; `source` (the checkpoint) names them in errors.
Artifacts artifacts_from_files(const config::Config& config,
                               const std::map<std::string, std::string>& files,
                               const std::string& source);

/// A trained model ready for eval, predict and explain.
struct LoadedModel {
  std::string checkpoint;  ///< its directory
  config::Config config;   ///< the config it was trained with
  Artifacts artifacts;
  models::Model model = nullptr;  ///< in eval mode, on the CPU
  int64_t step = 0;
  /// int8: its Linear layers are int8 (a quantized checkpoint, or quantize_model()).
  config::Quantize quantization = config::Quantize::none;
};

/// Loads a checkpoint (a checkpoint directory, a `best`/`last` link or a run directory) with
/// its config, tokenizer and classes, verifying checksums. Throws std::runtime_error naming the
/// checkpoint and the problem.
LoadedModel load_trained_model(const std::string& path);

/// With `quantize` int8, makes the model's Linear layers int8 (models/linear.h) unless they are
/// already; throws std::runtime_error when an int8 model would run on a `device` other than the
/// CPU or the int8 engine is unavailable.
void quantize_model(LoadedModel& model, config::Quantize quantize, const c10::Device& device);

/// Writes `model` as a standalone checkpoint directory `dir` (which must not exist or be
/// empty): model.safetensors (an int8 model's Linear weights as int8 + LAYER.weight_scale, the
/// rest as float), its artifacts and state.json, without optimizer state. Returns `dir`.
std::string write_model_dir(const std::string& dir, const LoadedModel& model);

/// What init_component() loaded.
struct InitReport {
  std::string checkpoint;                 ///< the checkpoint directory read
  int64_t loaded = 0;                     ///< tensors copied
  std::vector<std::string> missing;       ///< the model's COMPONENT.* tensors it lacked
  std::vector<std::string> unexpected;    ///< its COMPONENT.* tensors the model lacks
  std::vector<std::string> interpolated;  ///< position embeddings resized to the model's grid
};

/// Initialises the `component` ("vision" or "text") of `model` from the same-named tensors of
/// an xmodal checkpoint: a checkpoint directory, a `best`/`last` link, or a run directory (its
/// `best`, else its latest valid checkpoint). Position embeddings of another patch grid are
/// interpolated. Throws std::runtime_error naming the checkpoint for an unreadable checkpoint,
/// a shape that differs (other than a position grid) or no tensor of the component at all.
InitReport init_component(torch::nn::Module& model, const std::string& component,
                          const std::string& path);

/// Every parameter and buffer of a module by name (what model.safetensors holds).
std::map<std::string, torch::Tensor> state_tensors(const torch::nn::Module& module);

}  // namespace xmodal::checkpoint
