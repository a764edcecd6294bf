// Hugging Face model folders as starting weights: `model.vision.pretrained: DIR` (a ViTModel)
// and `model.text.pretrained: DIR` (a BertModel). A folder holds config.json and
// model.safetensors or pytorch_model.bin (read by xmodal's restricted unpickler); nothing is
// downloaded.
//
// The architecture comes from config.json when the config is loaded (config/pretrained.h:
// config::resolve_pretrained); this file loads the weights.
#pragma once

#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/models/bert.h"
#include "xmodal/models/import.h"
#include "xmodal/models/vit.h"

namespace xmodal::models {

/// DIR/model.safetensors, else DIR/pytorch_model.bin; throws std::runtime_error if neither.
std::string pretrained_weights_file(const std::string& dir);

/// What loading a pretrained folder did.
struct PretrainedReport {
  std::string file;                     ///< the weights file read
  int64_t loaded = 0;                   ///< tensors copied into the encoder
  std::vector<std::string> missing;     ///< encoder tensors the file did not provide
  std::vector<std::string> unused;      ///< file tensors with no place in the encoder
  bool interpolated_positions = false;  ///< ViT position embeddings resized to the image size
};

/// Loads a Hugging Face ViTModel folder into `vit` (position embeddings interpolated to its
/// patch grid). Shape mismatches are errors naming both shapes.
PretrainedReport load_pretrained_vit(ViTImpl& vit, const std::string& dir);

/// Loads a Hugging Face BertModel folder into `bert`.
PretrainedReport load_pretrained_bert(BertImpl& bert, const std::string& dir);

}  // namespace xmodal::models
