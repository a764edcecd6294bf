// Loading named tensors into modules, and the explicit name maps from other implementations.
//
//   torchvision VisionTransformer  conv_proj, class_token, encoder.pos_embedding,
//                                  encoder.layers.encoder_layer_N.{ln_1, self_attention, ln_2,
//                                  mlp.0, mlp.3}, encoder.ln        -> ViT (vit.h)
//   Hugging Face ViTModel          [vit.]embeddings.{cls_token, position_embeddings,
//                                  patch_embeddings.projection}, [vit.]encoder.layer.N.{
//                                  layernorm_before, attention.attention.{query,key,value},
//                                  attention.output.dense, layernorm_after, intermediate.dense,
//                                  output.dense}, [vit.]layernorm -> ViT (vit.h)
//   Hugging Face BertModel         [bert.]embeddings.*, [bert.]encoder.layer.N.*, [bert.]pooler.*
//                                  (query/key/value are fused into one qkv) -> Bert (bert.h)
#pragma once

#include <torch/nn.h>

#include <map>
#include <string>
#include <vector>

namespace xmodal::models {

using TensorMap = std::map<std::string, torch::Tensor>;

/// What load_state() did, like PyTorch's load_state_dict(strict=False) result.
struct LoadReport {
  std::vector<std::string> missing;     ///< module entries the tensors did not provide
  std::vector<std::string> unexpected;  ///< tensors the module has no entry for
};

/// Copies `tensors` into the module's parameters and buffers by name (converting dtype and
/// device). A shape mismatch is always an error naming both shapes; with `strict`, missing or
/// unexpected names are errors too. `source` names the origin in messages. Throws
/// std::runtime_error listing every problem.
LoadReport load_state(torch::nn::Module& module, const TensorMap& tensors, bool strict,
                      const std::string& source);

/// A converted state dict plus the source names that have no place in the target.
struct ImportResult {
  TensorMap tensors;
  std::vector<std::string> unused;
};

/// torchvision.models.VisionTransformer state dict -> ViT names. heads.* is unused.
ImportResult import_torchvision_vit(const TensorMap& source);

/// Hugging Face ViTModel (or ViTFor* with a vit. prefix) state dict -> ViT names; query/key/
/// value are fused into qkv. pooler.*, classifier.* and embeddings.mask_token are unused.
ImportResult import_hf_vit(const TensorMap& source);

/// Hugging Face BertModel (or BertFor* with a bert. prefix) state dict -> Bert names.
/// position_ids buffers are dropped; task heads (classifier.*, cls.*) are unused.
ImportResult import_hf_bert(const TensorMap& source);

}  // namespace xmodal::models
