#include "xmodal/models/pretrained.h"

#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>

#include "xmodal/core/strings.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/io/torch_pickle.h"

namespace xmodal::models {
namespace fs = std::filesystem;

namespace {

TensorMap read_weights(const std::string& dir, std::string& file) {
  file = pretrained_weights_file(dir);
  if (ends_with(file, ".safetensors")) {
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

}  // namespace

std::string pretrained_weights_file(const std::string& dir) {
  for (const char* name : {"model.safetensors", "pytorch_model.bin"}) {
    const auto path = fs::path(dir) / name;
    if (fs::exists(path)) return path.string();
  }
  throw std::runtime_error(dir + ": has neither model.safetensors nor pytorch_model.bin");
}

PretrainedReport load_pretrained_vit(ViTImpl& vit, const std::string& dir) {
  PretrainedReport report;
  auto imported = import_hf_vit(read_weights(dir, report.file));
  auto& table = imported.tensors["position_embedding"];
  if (!table.defined()) {
    imported.tensors.erase("position_embedding");
  } else if (vit.position_embedding.defined() && table.sizes() != vit.position_embedding.sizes() &&
             table.dim() == 3) {
    const int64_t grid = vit.options.image_size() / vit.options.patch_size();
    table = interpolate_position_embedding(table, grid, grid);
    report.interpolated_positions = true;
  }  // with sine-cosine positions the model has no table: load_into reports it unused
  load_into(vit, imported, report);
  return report;
}

PretrainedReport load_pretrained_bert(BertImpl& bert, const std::string& dir) {
  PretrainedReport report;
  load_into(bert, import_hf_bert(read_weights(dir, report.file)), report);
  return report;
}

}  // namespace xmodal::models
