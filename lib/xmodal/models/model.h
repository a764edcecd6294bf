// The whole image+text model: ViT + BERT -> Fusion -> task head (DESIGN.md section 2).
//
// Parameter names: vision.* (ViT), text.* (BERT), fusion.*, head.*. The encoder a fusion mode
// does not use is not built (image_only has no text.*, text_only no vision.*).
#pragma once

#include <torch/nn.h>

#include <optional>

#include "xmodal/models/bert.h"
#include "xmodal/models/fusion.h"
#include "xmodal/models/heads.h"
#include "xmodal/models/vit.h"

namespace xmodal::models {

/// classify: ViT + a linear layer on its [CLS] token (no text encoder, no fusion), the image
/// classifier used to pretrain the image encoder.
enum class Task { vqa, counting, classify };

struct ModelOptions {
  ModelOptions(Task task, FusionOptions fusion, int64_t head_hidden, int64_t num_classes)
      : task(task), fusion(std::move(fusion)), head_hidden(head_hidden), num_classes(num_classes) {}
  Task task;
  /// Image encoder; must be set unless fusion.mode is text_only.
  std::optional<ViTOptions> vision;
  /// Text encoder; must be set unless fusion.mode is image_only.
  std::optional<BertOptions> text;
  FusionOptions fusion;
  /// Hidden width of the head MLP.
  int64_t head_hidden;
  /// Answers (vqa) or categories (counting).
  int64_t num_classes;
  /// counting: count classes are 0..max_count.
  int64_t max_count = 10;
  /// Categories of the auxiliary counting head on the image tokens (0 = no such head).
  int64_t aux_counting_classes = 0;
  /// Categories of the auxiliary dense head on each image patch token (0 = no such head).
  int64_t aux_dense_classes = 0;
};

struct ModelOutput {
  torch::Tensor pooled;        ///< [B, fusion.hidden]
  torch::Tensor logits;        ///< vqa: [B, num_answers]; classify: [B, num_classes]
  torch::Tensor presence;      ///< counting: [B, C]
  torch::Tensor counts;        ///< counting: [B, C, max_count + 1]
  torch::Tensor aux_presence;  ///< auxiliary counting head (if any): [B, C']
  torch::Tensor aux_counts;    ///< auxiliary counting head (if any): [B, C', max_count + 1]
  torch::Tensor aux_dense;     ///< auxiliary dense head (if any): [B, P, C'] logits per patch
};

class ModelImpl : public torch::nn::Cloneable<ModelImpl> {
 public:
  explicit ModelImpl(const ModelOptions& options);
  void reset() override;

  /// images [B, 3, H, W] f32; input_ids, attention_mask, token_type_ids [B, L] int64 (mask and
  /// types may be undefined). The input a fusion mode does not use may be undefined.
  /// image_index [B] int64, when given: images holds N distinct images [N, 3, H, W] and sample b
  /// uses images[image_index[b]] (each image is encoded once however many samples share it).
  ModelOutput forward(const torch::Tensor& images, const torch::Tensor& input_ids,
                      const torch::Tensor& attention_mask = {},
                      const torch::Tensor& token_type_ids = {},
                      const torch::Tensor& image_index = {});

  ModelOptions options;
  /// The heads read the fusion's pooled [CLS] alone, so its last layer computes that row only
  /// (Fusion::forward's pooled_only). false computes every token (for comparisons).
  bool pooled_only_fusion = true;
  ViT vision = nullptr;
  Bert text = nullptr;
  Fusion fusion = nullptr;                    // not built for task classify
  VqaHead vqa_head = nullptr;                 // registered as "head" for task vqa
  torch::nn::Linear classify_head = nullptr;  // registered as "head" for task classify
  CountingHead counting_head = nullptr;       // registered as "head" for task counting
  CountingHead aux_counting = nullptr;        // on the mean of the image patch tokens, if asked for
  torch::nn::Linear aux_dense = nullptr;      // on each image patch token, if asked for
};
TORCH_MODULE(Model);

/// Total number of elements of the parameters of `module`.
int64_t count_parameters(const torch::nn::Module& module);

/// The model tree, one line per component with its parameter count:
///   vision  ViT  2.69M
///     patch_embedding  Conv2d  147.6K ...
std::string describe_model(const torch::nn::Module& module, int max_depth = 2);

}  // namespace xmodal::models
