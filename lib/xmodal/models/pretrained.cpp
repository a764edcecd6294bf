#include "xmodal/models/pretrained.h"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

#include "xmodal/core/strings.h"
#include "xmodal/io/json.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/io/torch_pickle.h"

namespace xmodal::models {
namespace fs = std::filesystem;

namespace {

TensorMap read_weights(const std::string& dir, std::string& file) {
  file = pretrained_weights_file(dir);
  if (file.size() >= 12 && file.compare(file.size() - 12, 12, ".safetensors") == 0) {
    return io::load_safetensors(file);
  }
  return io::load_torch_state_dict(file);
}

// Copies the imported tensors into `module` (not strict) and reports what was loaded, missing
// and unused.
void load_into(torch::nn::Module& module, const ImportResult& imported, PretrainedReport& report) {
  const auto loaded = load_state(module, imported.tensors, /*strict=*/false, report.file);
  report.missing = loaded.missing;
  report.unused = imported.unused;
  report.unused.insert(report.unused.end(), loaded.unexpected.begin(), loaded.unexpected.end());
  report.loaded = static_cast<int64_t>(imported.tensors.size() - loaded.unexpected.size());
}

std::string num(double v) {
  std::string s = std::to_string(v);
  if (v != 0 && (std::abs(v) < 1e-3)) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    s = buf;
  }
  return s;
}

}  // namespace

HfConfig read_hf_config(const std::string& dir) {
  HfConfig c;
  c.path = (fs::path(dir) / "config.json").string();
  if (!fs::exists(c.path)) {
    throw std::runtime_error(c.path +
                             ": not found (a Hugging Face model folder has config.json "
                             "next to model.safetensors or pytorch_model.bin)");
  }
  const auto file = io::JsonFile::load(c.path);
  const auto root = file.root();
  const io::Where top;
  if (!root.is_object()) file.fail(top, "expected a JSON object");
  const auto get_int = [&](const char* key, int64_t& out, bool required) {
    if (file.has(root, key)) {
      out = file.integer(root, key, top);
    } else if (required) {
      file.fail(top, key, "missing (needed to build the encoder)");
    }
  };
  if (file.has(root, "model_type")) c.model_type = file.string(root, "model_type", top);
  get_int("hidden_size", c.hidden_size, true);
  get_int("num_hidden_layers", c.num_hidden_layers, true);
  get_int("num_attention_heads", c.num_attention_heads, true);
  get_int("intermediate_size", c.intermediate_size, true);
  const bool vit = c.model_type == "vit";
  get_int("image_size", c.image_size, vit);
  get_int("patch_size", c.patch_size, vit);
  get_int("num_channels", c.num_channels, false);
  get_int("vocab_size", c.vocab_size, c.model_type == "bert");
  get_int("max_position_embeddings", c.max_position_embeddings, c.model_type == "bert");
  get_int("type_vocab_size", c.type_vocab_size, false);
  if (file.has(root, "layer_norm_eps")) c.layer_norm_eps = file.number(root, "layer_norm_eps", top);
  if (file.has(root, "hidden_act")) c.hidden_act = file.string(root, "hidden_act", top);
  if (file.has(root, "qkv_bias")) {
    bool b = true;
    if (root["qkv_bias"].get(b) != simdjson::SUCCESS) file.fail(top, "qkv_bias", "expected a bool");
    c.qkv_bias = b;
  }
  return c;
}

std::string pretrained_weights_file(const std::string& dir) {
  for (const char* name : {"model.safetensors", "pytorch_model.bin"}) {
    const auto path = fs::path(dir) / name;
    if (fs::exists(path)) return path.string();
  }
  throw std::runtime_error(dir + ": has neither model.safetensors nor pytorch_model.bin");
}

void resolve_pretrained(config::Config& c) {
  std::vector<std::string> problems;
  const auto check = [&](const HfConfig& hf, const std::string& key, int64_t yaml,
                         const char* hf_key, int64_t value) {
    if (yaml != value) {
      problems.push_back(key + " is " + std::to_string(yaml) + " in the config but " +
                         std::to_string(value) + " in " + hf.path + " (" + hf_key + ")");
    }
  };
  const auto common = [&](const HfConfig& hf, const std::string& component, const char* type,
                          double& eps) {
    if (!hf.model_type.empty() && hf.model_type != type) {
      problems.push_back(hf.path + ": model_type is \"" + hf.model_type + "\"; model." + component +
                         ".pretrained needs a \"" + type + "\" model");
    }
    if (hf.hidden_act != "gelu") {
      problems.push_back(hf.path + ": hidden_act \"" + hf.hidden_act +
                         "\" is not supported (xmodal's encoders use exact GELU, \"gelu\")");
    }
    if (eps == 0) {
      eps = hf.layer_norm_eps;
    } else if (std::abs(eps - hf.layer_norm_eps) > 1e-3 * hf.layer_norm_eps) {
      problems.push_back("model." + component + ".layer_norm_eps is " + num(eps) +
                         " in the config but " + num(hf.layer_norm_eps) + " in " + hf.path +
                         " (layer_norm_eps; 0 takes it from there)");
    }
  };
  auto& v = c.model.vision;
  if (!v.pretrained.empty()) {
    const auto hf = read_hf_config(v.pretrained);
    common(hf, "vision", "vit", v.layer_norm_eps);
    check(hf, "model.vision.hidden", v.hidden, "hidden_size", hf.hidden_size);
    check(hf, "model.vision.layers", v.layers, "num_hidden_layers", hf.num_hidden_layers);
    check(hf, "model.vision.heads", v.heads, "num_attention_heads", hf.num_attention_heads);
    check(hf, "model.vision.mlp_dim", v.mlp_dim, "intermediate_size", hf.intermediate_size);
    check(hf, "model.vision.patch_size", v.patch_size, "patch_size", hf.patch_size);
    if (v.stem != config::Stem::patch) {
      problems.push_back("model.vision.stem must be patch with model.vision.pretrained (" +
                         hf.path + " has a linear patch embedding)");
    }
    if (hf.num_channels != 3) {
      problems.push_back(hf.path + ": num_channels is " + std::to_string(hf.num_channels) +
                         "; xmodal's images are RGB (3)");
    }
    if (!hf.qkv_bias) problems.push_back(hf.path + ": qkv_bias false is not supported");
  }
  auto& t = c.model.text;
  if (!t.pretrained.empty()) {
    const auto hf = read_hf_config(t.pretrained);
    common(hf, "text", "bert", t.layer_norm_eps);
    check(hf, "model.text.hidden", t.hidden, "hidden_size", hf.hidden_size);
    check(hf, "model.text.layers", t.layers, "num_hidden_layers", hf.num_hidden_layers);
    check(hf, "model.text.heads", t.heads, "num_attention_heads", hf.num_attention_heads);
    check(hf, "model.text.intermediate", t.intermediate, "intermediate_size", hf.intermediate_size);
    check(hf, "model.text.max_position", t.max_position, "max_position_embeddings",
          hf.max_position_embeddings);
    if (t.vocab_size == 0) t.vocab_size = hf.vocab_size;
    check(hf, "model.text.vocab_size", t.vocab_size, "vocab_size", hf.vocab_size);
    if (hf.type_vocab_size != 2) {
      problems.push_back(hf.path + ": type_vocab_size is " + std::to_string(hf.type_vocab_size) +
                         "; xmodal's BERT has 2 token types");
    }
  }
  if (!problems.empty()) {
    std::string message = "pretrained model does not match the config";
    for (const auto& p : problems) message += (problems.size() > 1 ? "\n  " : ": ") + p;
    throw std::invalid_argument(message);
  }
}

PretrainedReport load_pretrained_vit(ViTImpl& vit, const std::string& dir) {
  PretrainedReport report;
  auto imported = import_hf_vit(read_weights(dir, report.file));
  auto& table = imported.tensors["position_embedding"];
  if (table.defined() && table.sizes() != vit.position_embedding.sizes() && table.dim() == 3) {
    const int64_t grid = vit.options.image_size() / vit.options.patch_size();
    table = interpolate_position_embedding(table, grid, grid);
    report.interpolated_positions = true;
  } else if (!table.defined()) {
    imported.tensors.erase("position_embedding");
  }
  load_into(vit, imported, report);
  return report;
}

PretrainedReport load_pretrained_bert(BertImpl& bert, const std::string& dir) {
  PretrainedReport report;
  load_into(bert, import_hf_bert(read_weights(dir, report.file)), report);
  return report;
}

}  // namespace xmodal::models
