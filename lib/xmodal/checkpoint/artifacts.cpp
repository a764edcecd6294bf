#include "xmodal/checkpoint/artifacts.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <stdexcept>

#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/import.h"
#include "xmodal/models/linear.h"
#include "xmodal/tasks/task.h"
#include "xmodal/text/factory.h"

namespace xmodal::checkpoint {
namespace fs = std::filesystem;
namespace {}  // namespace

std::map<std::string, std::string> artifact_files(const config::Config& config,
                                                  const Artifacts& artifacts) {
  std::map<std::string, std::string> files;
  files["config.yaml"] = config::dump_config(config);
  files["classes.txt"] = text::vocab_file(artifacts.class_names);
  if (!artifacts.aux_class_names.empty()) {
    files["aux_classes.txt"] = text::vocab_file(artifacts.aux_class_names);
  }
  for (auto& [name, bytes] : artifacts.tokenizer->files()) files[name] = std::move(bytes);
  return files;
}

Artifacts artifacts_from_files(const config::Config& config,
                               const std::map<std::string, std::string>& files,
                               const std::string& source) {
  const auto need = [&](const std::string& name) -> const std::string& {
    return text::required_file(files, name, source);
  };
  Artifacts a;
  a.class_names = text::split_lines(need("classes.txt"));
  if (a.class_names.empty())
    throw std::runtime_error("checkpoint " + source + ": empty classes.txt");
  const auto aux = files.find("aux_classes.txt");
  if (aux != files.end()) a.aux_class_names = text::split_lines(aux->second);
  a.tokenizer = text::tokenizer_from_files(config, files, source);
  return a;
}

std::map<std::string, torch::Tensor> state_tensors(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value().detach();
  return out;
}

LoadedModel load_trained_model(const std::string& path) {
  LoadedModel m;
  m.checkpoint = resolve_checkpoint(path);
  auto content = load_checkpoint(m.checkpoint, {/*optimizer=*/false});
  const auto it = content.files.find("config.yaml");
  if (it == content.files.end()) {
    throw std::runtime_error("checkpoint " + m.checkpoint + ": no config.yaml");
  }
  m.config =
      config::parse_config(it->second, m.checkpoint + "/config.yaml", {}, config::Folders::keep);
  m.artifacts = artifacts_from_files(m.config, content.files, m.checkpoint);
  m.model =
      tasks::build_model(m.config, {m.artifacts.tokenizer->vocab_size(),
                                    static_cast<int64_t>(m.artifacts.class_names.size()),
                                    static_cast<int64_t>(m.artifacts.aux_class_names.size())});
  // A quantized checkpoint (xmodal quantize) holds its Linear weights as int8 + scales.
  models::load_int8_layers(*m.model, content.model, m.checkpoint + "/model.safetensors");
  try {
    models::load_state(*m.model, content.model, /*strict=*/true,
                       m.checkpoint + "/model.safetensors");
  } catch (const std::runtime_error& e) {
    throw std::runtime_error(std::string(e.what()) +
                             ". The checkpoint's config.yaml no longer "
                             "describes the model it was saved with (was it edited?)");
  }
  m.model->eval();
  m.step = content.state.step;
  m.quantization = models::has_int8(*m.model) ? config::Quantize::int8 : config::Quantize::none;
  return m;
}

void quantize_model(LoadedModel& m, config::Quantize quantize, const c10::Device& device) {
  if (quantize == config::Quantize::int8 && m.quantization != config::Quantize::int8) {
    const int layers = models::quantize_int8(*m.model);
    m.quantization = config::Quantize::int8;
    log::info("[int8] {} Linear layers quantized (per-row int8 weights, dynamic int8 inputs)",
              layers);
  }
  if (m.quantization == config::Quantize::int8 && !device.is_cpu()) {
    throw std::runtime_error("checkpoint " + m.checkpoint +
                             ": an int8 model runs on the CPU only (run.device: cpu)");
  }
}

std::string write_model_dir(const std::string& dir, const LoadedModel& m) {
  CheckpointContent content;
  content.state.step = m.step;
  content.model = models::int8_state_tensors(*m.model);
  config::Config c = m.config;  // an int8 model's config says so (eval.quantize: int8)
  if (m.quantization == config::Quantize::int8) c.eval.quantize = config::Quantize::int8;
  content.files = artifact_files(c, m.artifacts);
  return write_checkpoint_dir(dir, content);
}

InitReport init_component(torch::nn::Module& model, const std::string& component,
                          const std::string& path) {
  InitReport report;
  std::error_code ec;
  // A run directory: its best checkpoint (resolve_checkpoint alone would take the newest).
  const fs::path best = fs::path(path) / "best";
  report.checkpoint = resolve_checkpoint(fs::exists(best, ec) ? best.string() : path);
  const auto source = load_checkpoint(report.checkpoint, {/*optimizer=*/false}).model;
  for (const auto& [name, tensor] : source) {
    const std::string suffix = models::kInt8ScaleSuffix;
    if (name.size() > suffix.size() &&
        name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
      throw std::invalid_argument(report.checkpoint +
                                  " is an int8 checkpoint (xmodal quantize): it cannot start "
                                  "training; give the float checkpoint it was made from");
    }
  }
  const std::string prefix = component + ".";
  const auto starts = [&](const std::string& name) { return name.rfind(prefix, 0) == 0; };
  auto target = state_tensors(model);
  torch::NoGradGuard no_grad;
  for (auto& [name, tensor] : target) {
    if (!starts(name)) continue;
    const auto it = source.find(name);
    if (it == source.end()) {
      report.missing.push_back(name);
      continue;
    }
    torch::Tensor value = it->second;
    if (value.sizes() != tensor.sizes()) {
      const bool grid = name == prefix + "position_embedding" && value.dim() == 3 &&
                        tensor.dim() == 3 && value.size(2) == tensor.size(2);
      const auto side = static_cast<int64_t>(std::lround(std::sqrt(tensor.size(1) - 1.0)));
      if (!grid || side * side != tensor.size(1) - 1) {
        throw std::invalid_argument(report.checkpoint + ": " + name + " has shape " +
                                    c10::str(value.sizes()) + " but this model's is " +
                                    c10::str(tensor.sizes()) +
                                    " (init_from needs the same encoder architecture)");
      }
      value = models::interpolate_position_embedding(value.to(torch::kFloat32), side, side);
      report.interpolated.push_back(name);
    }
    tensor.copy_(value);
    ++report.loaded;
  }
  for (const auto& [name, tensor] : source) {
    if (starts(name) && !target.count(name)) report.unexpected.push_back(name);
  }
  if (report.loaded == 0) {
    throw std::runtime_error(report.checkpoint + ": no " + prefix +
                             "* tensor matches this model (is it a model with a " + component +
                             " encoder?)");
  }
  return report;
}

}  // namespace xmodal::checkpoint
