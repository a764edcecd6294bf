// The architecture of a Hugging Face model folder (`model.vision.pretrained: DIR`, a ViTModel;
// `model.text.pretrained: DIR`, a BertModel) as a layer of the configuration, as
// `from_pretrained(DIR)` reads it:
//
//   defaults < included files < pretrained folders' config.json < the file itself < --set
//
// Every architecture key the user did not set (in the file itself or with --set: a value from
// an included file, such as the quickstart's tiny text encoder, yields) is taken from
// DIR/config.json, and its origin becomes "DIR/config.json (hidden_size)": messages and
// `--dump-config` name the folder. A key the user did set must agree with config.json (a
// conflict is an error naming both values). A BERT folder with vocab.txt also gives
// tokenizer.type wordpiece and tokenizer.path (and from tokenizer_config.json, if present,
// tokenizer.lower_case <- do_lower_case, tokenizer.accents <- strip_accents,
// tokenizer.chinese_chars <- tokenize_chinese_chars); a ViT folder with
// preprocessor_config.json gives data.mean / data.std. Once resolved, the run's
// config.yaml holds every value, so its checkpoints no longer need the folders.
//
// Taken from config.json (xmodal key <- Hugging Face key):
//   ViT:  model.vision.{hidden <- hidden_size, layers <- num_hidden_layers, heads <-
//         num_attention_heads, mlp_dim <- intermediate_size, patch_size, layer_norm_eps},
//         data.image_size <- image_size (a different size the user sets is fine: the position
//         embeddings are interpolated)
//   BERT: model.text.{hidden, layers, heads, intermediate <- intermediate_size, max_position <-
//         max_position_embeddings, vocab_size, layer_norm_eps}
// Not taken: dropout (hidden_dropout_prob is a training choice; xmodal keeps its own, 0 by
// default), which also keeps the fused attention kernels in use.
#pragma once

#include <cstdint>
#include <string>

#include "xmodal/config/config.h"

namespace xmodal::config {

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

/// Completes `config` from its pretrained folders (see the top of this file): keys whose
/// origin is "default" (layer_norm_eps and text.vocab_size also when 0) are taken from
/// config.json; the others are checked against it. Idempotent. Throws ConfigError listing every
/// conflict with where the key was set:
///   `t.yaml:4: model.vision.hidden is 192 in the config but 768 in DIR/config.json
///   (hidden_size)`
/// and std::runtime_error for an unreadable folder.
void resolve_pretrained(Config& config);

}  // namespace xmodal::config
