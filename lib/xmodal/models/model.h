// The whole image+text model: ViT + BERT -> Fusion -> task head (docs/design.md section 2).
//
// Parameter names: vision.* (ViT), text.* (BERT), fusion.*, head.*. The encoder a fusion mode
// does not use is not built (image_only has no text.*, text_only no vision.*).
#pragma once

#include <torch/nn.h>

#include <optional>

#include "xmodal/models/bert.h"
#include "xmodal/models/fusion.h"
#include "xmodal/models/heads.h"
#include "xmodal/models/linear.h"
#include "xmodal/models/vit.h"

namespace xmodal::models {

/// classify: ViT + a linear layer on its [CLS] token (no text encoder, no fusion), the image
/// classifier used to pretrain the image encoder. retrieval: ViT and BERT, each [CLS] token
/// projected to a shared L2-normalised space (a dual encoder, as CLIP), and with itm a matching
/// head on the concat fusion (ALBEF).
enum class Task { vqa, counting, classify, retrieval };

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
  /// retrieval: width of the shared embedding space.
  int64_t embed_dim = 256;
  /// retrieval: build the image-text matching head (and the fusion it reads).
  bool itm = false;
};

struct ModelOutput {
  torch::Tensor pooled;        ///< [B, fusion.hidden]
  torch::Tensor logits;        ///< vqa: [B, num_answers]; classify: [B, num_classes]
  torch::Tensor presence;      ///< counting: [B, C]
  torch::Tensor counts;        ///< counting: [B, C, max_count + 1]
  torch::Tensor aux_presence;  ///< auxiliary counting head (if any): [B, C']
  torch::Tensor aux_counts;    ///< auxiliary counting head (if any): [B, C', max_count + 1]
  torch::Tensor aux_dense;     ///< auxiliary dense head (if any): [B, P, C'] logits per patch
  /// retrieval: the L2-normalised embeddings of the distinct images [N, E] (rows of `images`)
  /// and of the texts [B, E]; sample b pairs text b with image image_index[b].
  torch::Tensor image_embeds, text_embeds;
  torch::Tensor logit_scale;  ///< retrieval: exp of the learnt temperature parameter, scalar
  /// retrieval with itm, in training: matching logits [3B, 2] of each pair, then of each text
  /// with a hard negative image, then of each image with a hard negative text (class 1 =
  /// match); undefined when the batch has no negatives.
  torch::Tensor itm_logits;
  /// retrieval with itm: the encoders' tokens (image [N, 1 + P, Dv], text [B, L, Dt]), for
  /// re-ranking pairs by the matching head after the contrastive ranking.
  torch::Tensor image_tokens, text_tokens;
  /// vqa and counting: the image encoder's tokens of each sample [B, 1 + P, Dv] (after its
  /// final norm), for feature distillation (train.distill.features).
  torch::Tensor image_features;
};

class ModelImpl : public torch::nn::Cloneable<ModelImpl> {
 public:
  explicit ModelImpl(const ModelOptions& options);
  void reset() override;

  /// images [B, 3, H, W] f32; input_ids, attention_mask, token_type_ids [B, L] int64 (mask and
  /// types may be undefined). The input a fusion mode does not use may be undefined.
  /// image_index [B] int64, when given: images holds N distinct images [N, 3, H, W] and sample b
  /// uses images[image_index[b]] (each image is encoded once however many samples share it).
  /// patch_padding [N, P] bool (true = hidden: no token of the encoders or the fusion attends
  /// to that patch, the masked input of explanations) or undefined.
  ModelOutput forward(const torch::Tensor& images, const torch::Tensor& input_ids,
                      const torch::Tensor& attention_mask = {},
                      const torch::Tensor& token_type_ids = {},
                      const torch::Tensor& image_index = {},
                      const torch::Tensor& patch_padding = {});

  /// retrieval: the L2-normalised embeddings of images [N, 3, H, W] -> [N, E] and of texts
  /// (input_ids [B, L], mask and types may be undefined) -> [B, E]: what forward() returns as
  /// image_embeds and text_embeds, one encoder at a time (an index of images, a text query).
  torch::Tensor embed_images(const torch::Tensor& images);
  torch::Tensor embed_texts(const torch::Tensor& input_ids,
                            const torch::Tensor& attention_mask = {},
                            const torch::Tensor& token_type_ids = {});

  /// retrieval: matching logits [B, 2] of image tokens [B, 1 + P, Dv] with text tokens
  /// [B, L, Dt] (padding [B, L] bool, true = padding, or undefined).
  torch::Tensor itm_logits(const torch::Tensor& image_tokens, const torch::Tensor& text_tokens,
                           const torch::Tensor& text_padding);

  ModelOptions options;
  /// The heads read the fusion's pooled [CLS] alone, so its last layer computes that row only
  /// (Fusion::forward's pooled_only). false computes every token (for comparisons).
  bool pooled_only_fusion = true;
  ViT vision = nullptr;
  Bert text = nullptr;
  Fusion fusion = nullptr;               // not built for task classify
  VqaHead vqa_head = nullptr;            // registered as "head" for task vqa
  Linear classify_head = nullptr;        // registered as "head" for task classify
  CountingHead counting_head = nullptr;  // registered as "head" for task counting
  CountingHead aux_counting = nullptr;   // on the mean of the image patch tokens, if asked for
  Linear aux_dense = nullptr;            // on each image patch token, if asked for
  Linear image_projection = nullptr;     // retrieval: ViT [CLS] -> embedding
  Linear text_projection = nullptr;      // retrieval: BERT [CLS] -> embedding
  torch::Tensor logit_scale;             // retrieval: log of the inverse temperature
  Linear itm_head = nullptr;             // retrieval with itm: registered as "head"

 private:
  ModelOutput forward_retrieval(const torch::Tensor& images, const torch::Tensor& input_ids,
                                const torch::Tensor& attention_mask,
                                const torch::Tensor& token_type_ids,
                                const torch::Tensor& image_index,
                                const torch::Tensor& patch_padding);
};
TORCH_MODULE(Model);

/// Total number of elements of the parameters of `module`.
int64_t count_parameters(const torch::nn::Module& module);

/// The model tree, one line per component with its parameter count:
///   vision  ViT  2.69M
///     patch_embedding  Conv2d  147.6K ...
std::string describe_model(const torch::nn::Module& module, int max_depth = 2);

}  // namespace xmodal::models
