#include "xmodal/train/encoder_init.h"

#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/strings.h"
#include "xmodal/models/pretrained.h"

namespace xmodal::train {
namespace {

bool has_encoder(const models::ModelImpl& model, const std::string& component) {
  return component == "vision" ? !model.vision.is_empty() : !model.text.is_empty();
}

// Runs `load`, naming the key in its error (whose kind it keeps).
template <typename Load>
auto load_naming_key(const std::string& key, Load load) {
  try {
    return load();
  } catch (const std::exception&) {
    rethrow_in(key + ": ");
  }
}

std::string listed(const char* what, const std::vector<std::string>& names) {
  return names.empty() ? std::string() : std::string("; ") + what + ": " + join(names, ", ");
}

}  // namespace

void init_encoders(models::ModelImpl& model, const config::Config& config) {
  const auto& m = config.model;
  const auto ignored = [&](const std::string& component, const char* key) {
    if (has_encoder(model, component)) return false;
    log::warn("[init] model.{}.{} ignored: this model (fusion mode {}) has no {} encoder",
              component, key, config::to_string(m.fusion.mode), component);
    return true;
  };
  for (const auto& [component, dir] :
       {std::pair<std::string, std::string>{"vision", m.vision.pretrained},
        {"text", m.text.pretrained}}) {
    if (dir.empty() || ignored(component, "pretrained")) continue;
    const bool vision = component == "vision";
    const std::string& folder = dir;  // a structured binding cannot be captured in C++17
    const auto r = load_naming_key("model." + component + ".pretrained", [&] {
      return vision ? models::load_pretrained_vit(*model.vision, folder)
                    : models::load_pretrained_bert(*model.text, folder);
    });
    log::info("[init] {}: {} tensors from {}{}{}{}", component, r.loaded, r.file,
              r.interpolated_positions ? "; position embeddings interpolated" : "",
              listed("missing (left as initialised)", r.missing), listed("unused", r.unused));
  }
  for (const auto& [component, from] :
       {std::pair<std::string, std::string>{"vision", m.vision.init_from},
        {"text", m.text.init_from}}) {
    if (from.empty() || ignored(component, "init_from")) continue;
    const std::string& name = component;  // a structured binding cannot be captured in C++17
    const std::string& run = from;
    const auto r = load_naming_key("model." + component + ".init_from",
                                   [&] { return checkpoint::init_component(model, name, run); });
    log::info("[init] {}: {} tensors from {}{}{}{}", component, r.loaded, r.checkpoint,
              listed("interpolated", r.interpolated),
              listed("missing (left as initialised)", r.missing),
              listed("unexpected (ignored)", r.unexpected));
  }
}

void freeze_encoders(models::ModelImpl& model, const config::ModelConfig& config, int64_t step) {
  for (const auto& [encoder, steps] :
       {std::pair<torch::nn::Module*, int64_t>{model.vision ? model.vision.get() : nullptr,
                                               config.vision.freeze_steps},
        {model.text ? model.text.get() : nullptr, config.text.freeze_steps}}) {
    if (encoder == nullptr || steps == 0) continue;
    const bool trainable = steps > 0 && step >= steps;  // -1: locked for the whole run
    for (auto& p : encoder->parameters()) p.requires_grad_(trainable);
  }
  if (config.vision.freeze_stem && model.vision && !model.vision->stem->is_empty()) {
    // Fixed weights and BatchNorm statistics (eval mode; evaluations put the model back in
    // training mode, so this is done before every step).
    for (auto& p : model.vision->stem->parameters()) p.requires_grad_(false);
    model.vision->stem->eval();
  }
}

}  // namespace xmodal::train
