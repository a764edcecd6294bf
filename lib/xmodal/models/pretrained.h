// Hugging Face model folders as starting weights: `model.vision.pretrained: DIR` (a ViTModel)
// and `model.text.pretrained: DIR` (a BertModel). A folder holds config.json and
// model.safetensors or pytorch_model.bin (read by xmodal's restricted unpickler); nothing is
// downloaded.
//
// The architecture comes from config.json: the YAML's architecture keys must agree with it
// (a conflict is an error naming both values), and the keys the YAML leaves at 0
// (layer_norm_eps, text.vocab_size) are filled in from it, so the run's config.yaml, and with it
// every checkpoint, no longer needs the folder.
#pragma once

#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/models/bert.h"
#include "xmodal/models/import.h"
#include "xmodal/models/vit.h"

namespace xmodal::models {

/// The config.json keys xmodal reads (Hugging Face names).
struct HfConfig {
  std::string path;  ///< DIR/config.json
  std::string model_type;
  int64_t hidden_size = 0;
  int64_t num_hidden_layers = 0;
  int64_t num_attention_heads = 0;
  int64_t intermediate_size = 0;
  int64_t image_size = 0;  ///< ViT
  int64_t patch_size = 0;
  int64_t num_channels = 3;
  bool qkv_bias = true;
  int64_t vocab_size = 0;  ///< BERT
  int64_t max_position_embeddings = 0;
  int64_t type_vocab_size = 2;
  double layer_norm_eps = 1e-12;
  std::string hidden_act = "gelu";
};

/// Reads DIR/config.json. Throws std::runtime_error naming the file for a missing or malformed
/// file or a missing size key.
HfConfig read_hf_config(const std::string& dir);

/// DIR/model.safetensors, else DIR/pytorch_model.bin; throws std::runtime_error if neither.
std::string pretrained_weights_file(const std::string& dir);

/// Checks the YAML's architecture keys against the pretrained folders' config.json and fills in
/// the keys left at 0 (model.{vision,text}.layer_norm_eps, model.text.vocab_size). Throws
/// std::invalid_argument listing every conflict: `model.vision.hidden is 192 in the config but
/// 768 in DIR/config.json (hidden_size)`.
void resolve_pretrained(config::Config& config);

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
