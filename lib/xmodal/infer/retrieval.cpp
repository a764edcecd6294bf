#include "xmodal/infer/retrieval.h"

#include <nlohmann/json.hpp>

#include <filesystem>
#include <random>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/transforms.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/models/dual_encoder.h"

namespace xmodal::infer {

bool has_embeddings(const checkpoint::LoadedModel& m) {
  return models::dual_encoder(*m.model) != nullptr;
}

void require_retrieval(const checkpoint::LoadedModel& m, const std::string& what) {
  if (!has_embeddings(m)) {
    throw OptionError("", what + " needs a task retrieval checkpoint; " +
                              OptionError::literal(m.checkpoint) + " is task " +
                              config::to_string(m.config.task));
  }
}

std::string checkpoint_identity(const std::string& checkpoint_dir) {
  const std::string path = (std::filesystem::path(checkpoint_dir) / "state.json").string();
  const auto state = nlohmann::json::parse(io::read_file(path, 1 << 24), nullptr, false);
  if (!state.is_object() || !state.contains("files") ||
      !state["files"].contains("model.safetensors")) {
    throw std::runtime_error(path + ": no model.safetensors entry (not a checkpoint?)");
  }
  const auto& f = state["files"]["model.safetensors"];
  return "crc32 " + f.value("crc32", std::string("?")) + ", " +
         std::to_string(f.value("bytes", int64_t{0})) + " bytes";
}

torch::Tensor embed_texts(checkpoint::LoadedModel& m, const std::vector<std::string>& texts,
                          const c10::Device& device, int batch_size) {
  torch::NoGradGuard no_grad;
  const int len = m.config.data.max_text_len;
  std::vector<torch::Tensor> parts;
  const int64_t n = static_cast<int64_t>(texts.size());
  for (int64_t start = 0; start < n; start += batch_size) {
    const int64_t end = std::min<int64_t>(n, start + batch_size);
    auto ids = torch::empty({end - start, len}, torch::kLong);
    auto mask = torch::empty({end - start, len}, torch::kLong);
    auto types = torch::empty({end - start, len}, torch::kLong);
    for (int64_t i = start; i < end; ++i) {
      const auto enc = m.artifacts.tokenizer->encode(texts[i], len);
      std::copy(enc.ids.begin(), enc.ids.end(), ids[i - start].data_ptr<int64_t>());
      std::copy(enc.mask.begin(), enc.mask.end(), mask[i - start].data_ptr<int64_t>());
      std::copy(enc.types.begin(), enc.types.end(), types[i - start].data_ptr<int64_t>());
    }
    parts.push_back(models::embed_texts(*m.model, ids.to(device), mask.to(device), types.to(device))
                        .to(torch::kCPU));
  }
  if (parts.empty()) return torch::empty({0, m.config.model.retrieval.embed_dim});
  return torch::cat(parts);
}

torch::Tensor class_embeddings(checkpoint::LoadedModel& m, const std::vector<std::string>& classes,
                               const std::vector<std::string>& templates,
                               const c10::Device& device) {
  if (templates.empty()) throw std::invalid_argument("zero-shot: no prompt templates");
  std::vector<std::string> texts;
  for (const auto& name : classes) {
    for (const auto& t : templates) {
      const auto at = t.find("{}");
      if (at == std::string::npos) {
        throw std::invalid_argument("prompt template '" + t + "' has no {} for the class name");
      }
      texts.push_back(t.substr(0, at) + name + t.substr(at + 2));
    }
  }
  const auto e =
      embed_texts(m, texts, device)
          .view({static_cast<int64_t>(classes.size()), static_cast<int64_t>(templates.size()), -1})
          .mean(1);
  namespace F = torch::nn::functional;
  return F::normalize(e, F::NormalizeFuncOptions().dim(1).eps(1e-12));
}

torch::Tensor image_tensor(const checkpoint::LoadedModel& m, const std::string& path) {
  const auto options = data::loader_options(m.config, /*train=*/false).transform;
  std::mt19937_64 rng(0);
  return data::transform_image(io::read_image_rgb(path), options, rng).pixels;
}

}  // namespace xmodal::infer
