#include "xmodal/models/import.h"

#include <torch/torch.h>

#include <regex>
#include <set>
#include <stdexcept>

#include "xmodal/io/safetensors.h"

namespace xmodal::models {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::string s = "[";
  for (int64_t i = 0; i < t.dim(); ++i) s += (i ? ", " : "") + std::to_string(t.size(i));
  return s + "]";
}

// Applies the first matching (pattern, replacement) rule; "" when none matches.
std::string rename(const std::string& name,
                   const std::vector<std::pair<std::regex, std::string>>& rules) {
  for (const auto& [pattern, replacement] : rules) {
    if (std::regex_match(name, pattern)) return std::regex_replace(name, pattern, replacement);
  }
  return "";
}

// A Hugging Face encoder's state dict -> xmodal names: `prefix` (e.g. "bert.") is optional,
// `skip` names are dropped, `qkv` matches separate query/key/value projections (groups: layer,
// query|key|value, weight|bias), which are fused in q, k, v order into layers.N.attention.qkv,
// and the rest goes through `rules`; names no rule takes are unused.
ImportResult import_hf_encoder(const TensorMap& source, const std::string& prefix,
                               const std::set<std::string>& skip, const std::regex& qkv,
                               const std::vector<std::pair<std::regex, std::string>>& rules,
                               const char* model) {
  ImportResult result;
  std::map<std::string, std::map<std::string, torch::Tensor>> fused;
  for (const auto& [full_name, t] : source) {
    std::string name = full_name;
    if (name.rfind(prefix, 0) == 0) name = name.substr(prefix.size());
    if (skip.count(name)) continue;
    std::smatch m;
    if (std::regex_match(name, m, qkv)) {
      fused["layers." + m[1].str() + ".attention.qkv." + m[3].str()][m[2].str()] = t;
      continue;
    }
    const std::string target = rename(name, rules);
    if (target.empty()) {
      result.unused.push_back(full_name);
    } else {
      result.tensors[target] = t;
    }
  }
  for (auto& [target, parts] : fused) {
    if (parts.size() != 3) {
      throw std::runtime_error(std::string(model) + " import: " + target +
                               " needs query, key and value; found " +
                               std::to_string(parts.size()) + " of them");
    }
    result.tensors[target] = torch::cat({parts["query"], parts["key"], parts["value"]}, 0);
  }
  return result;
}

}  // namespace

LoadReport load_state(torch::nn::Module& module, const TensorMap& tensors, bool strict,
                      const std::string& source) {
  LoadReport report;
  std::vector<std::string> problems;
  std::set<std::string> used;
  torch::NoGradGuard no_grad;
  auto load_one = [&](const std::string& name, torch::Tensor& target) {
    const auto it = tensors.find(name);
    if (it == tensors.end()) {
      report.missing.push_back(name);
      return;
    }
    used.insert(name);
    if (it->second.sizes() != target.sizes()) {
      problems.push_back(name + ": shape " + shape_text(it->second) + " in " + source +
                         ", but the model has " + shape_text(target));
      return;
    }
    // copy_ would turn int8 codes or integers into weights without a word (a tampered int8
    // checkpoint whose scale was removed): a float parameter takes only floats, an integer
    // buffer only integers
    if (it->second.is_floating_point() != target.is_floating_point()) {
      problems.push_back(name + ": " + io::safetensors_dtype(it->second.scalar_type()) + " in " +
                         source + ", but the model holds " +
                         io::safetensors_dtype(target.scalar_type()) +
                         (it->second.scalar_type() == torch::kChar
                              ? " (only a Linear weight stored with its .weight_scale is int8)"
                              : ""));
      return;
    }
    target.copy_(it->second);
  };
  for (auto& item : module.named_parameters(/*recurse=*/true)) load_one(item.key(), item.value());
  for (auto& item : module.named_buffers(/*recurse=*/true)) load_one(item.key(), item.value());
  for (const auto& [name, t] : tensors) {
    if (!used.count(name)) report.unexpected.push_back(name);
  }
  if (strict) {
    for (const auto& name : report.missing)
      problems.push_back("missing from " + source + ": " + name);
    for (const auto& name : report.unexpected) {
      problems.push_back("unexpected in " + source + ": " + name);
    }
  }
  if (!problems.empty()) {
    // One line: the first three problems and how many more.
    std::string message = "cannot load " + source + " (" + std::to_string(problems.size()) +
                          " problem" + (problems.size() > 1 ? "s" : "") + "): ";
    for (size_t i = 0; i < problems.size() && i < 3; ++i) {
      message += (i ? "; " : "") + problems[i];
    }
    if (problems.size() > 3) message += "; and " + std::to_string(problems.size() - 3) + " more";
    throw std::runtime_error(message);
  }
  return report;
}

ImportResult import_torchvision_vit(const TensorMap& source) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex("conv_proj\\.(weight|bias)"), "patch_embedding.$1"},
      {std::regex("class_token"), "cls_token"},
      {std::regex("encoder\\.pos_embedding"), "position_embedding"},
      {std::regex("encoder\\.layers\\.encoder_layer_(\\d+)\\.ln_1\\.(weight|bias)"),
       "layers.$1.norm1.$2"},
      {std::regex("encoder\\.layers\\.encoder_layer_(\\d+)\\.ln_2\\.(weight|bias)"),
       "layers.$1.norm2.$2"},
      {std::regex(
           "encoder\\.layers\\.encoder_layer_(\\d+)\\.self_attention\\.in_proj_(weight|bias)"),
       "layers.$1.attention.qkv.$2"},
      {std::regex(
           "encoder\\.layers\\.encoder_layer_(\\d+)\\.self_attention\\.out_proj\\.(weight|bias)"),
       "layers.$1.attention.out.$2"},
      {std::regex("encoder\\.layers\\.encoder_layer_(\\d+)\\.mlp\\.(0|linear_1)\\.(weight|bias)"),
       "layers.$1.mlp.fc1.$3"},
      {std::regex("encoder\\.layers\\.encoder_layer_(\\d+)\\.mlp\\.(3|linear_2)\\.(weight|bias)"),
       "layers.$1.mlp.fc2.$3"},
      {std::regex("encoder\\.ln\\.(weight|bias)"), "norm.$1"},
  };
  ImportResult result;
  for (const auto& [name, t] : source) {
    const std::string target = rename(name, rules);
    if (target.empty()) {
      result.unused.push_back(name);
    } else {
      result.tensors[target] = t;
    }
  }
  return result;
}

ImportResult import_hf_bert(const TensorMap& source) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex("embeddings\\.word_embeddings\\.weight"), "embeddings.word.weight"},
      {std::regex("embeddings\\.position_embeddings\\.weight"), "embeddings.position.weight"},
      {std::regex("embeddings\\.token_type_embeddings\\.weight"), "embeddings.token_type.weight"},
      {std::regex("embeddings\\.LayerNorm\\.(weight|gamma)"), "embeddings.norm.weight"},
      {std::regex("embeddings\\.LayerNorm\\.(bias|beta)"), "embeddings.norm.bias"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.attention\\.output\\.dense\\.(weight|bias)"),
       "layers.$1.attention.out.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.attention\\.output\\.LayerNorm\\.(weight|gamma)"),
       "layers.$1.norm1.weight"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.attention\\.output\\.LayerNorm\\.(bias|beta)"),
       "layers.$1.norm1.bias"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.intermediate\\.dense\\.(weight|bias)"),
       "layers.$1.mlp.fc1.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.output\\.dense\\.(weight|bias)"),
       "layers.$1.mlp.fc2.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.output\\.LayerNorm\\.(weight|gamma)"),
       "layers.$1.norm2.weight"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.output\\.LayerNorm\\.(bias|beta)"),
       "layers.$1.norm2.bias"},
      {std::regex("pooler\\.dense\\.(weight|bias)"), "pooler.dense.$1"},
  };
  static const std::regex qkv(
      "encoder\\.layer\\.(\\d+)\\.attention\\.self\\.(query|key|value)\\.(weight|bias)");
  // position_ids: a buffer HF recomputes, not a weight.
  return import_hf_encoder(source, "bert.", {"embeddings.position_ids"}, qkv, rules, "BERT");
}

ImportResult import_hf_vit(const TensorMap& source) {
  static const std::vector<std::pair<std::regex, std::string>> rules = {
      {std::regex("embeddings\\.cls_token"), "cls_token"},
      {std::regex("embeddings\\.position_embeddings"), "position_embedding"},
      {std::regex("embeddings\\.patch_embeddings\\.projection\\.(weight|bias)"),
       "patch_embedding.$1"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.layernorm_before\\.(weight|bias)"),
       "layers.$1.norm1.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.layernorm_after\\.(weight|bias)"),
       "layers.$1.norm2.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.attention\\.output\\.dense\\.(weight|bias)"),
       "layers.$1.attention.out.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.intermediate\\.dense\\.(weight|bias)"),
       "layers.$1.mlp.fc1.$2"},
      {std::regex("encoder\\.layer\\.(\\d+)\\.output\\.dense\\.(weight|bias)"),
       "layers.$1.mlp.fc2.$2"},
      {std::regex("layernorm\\.(weight|bias)"), "norm.$1"},
  };
  static const std::regex qkv(
      "encoder\\.layer\\.(\\d+)\\.attention\\.attention\\.(query|key|value)\\.(weight|bias)");
  // pooler.*, classifier.* and embeddings.mask_token have no place in the ViT: unused.
  return import_hf_encoder(source, "vit.", {}, qkv, rules, "ViT");
}

}  // namespace xmodal::models
