// Retrieval's head: a dual encoder (CLIP) over the model's encoders, each [CLS] token projected
// to a shared L2-normalised space with a learnt temperature, and with itm a matching head on
// the concat fusion with in-batch hard negatives (ALBEF). Its parameters keep the names of its
// checkpoints: image_projection.*, text_projection.*, logit_scale, head.* (the ITM head).
#pragma once

#include <torch/torch.h>

#include <string>

#include "xmodal/models/model.h"

namespace xmodal::models {

/// The dual encoder's outputs (ModelOutput::outputs): the L2-normalised embeddings of the
/// distinct images [N, E] (rows of `images`) and of the texts [B, E] (sample b pairs text b with
/// image image_index[b]); exp of the learnt temperature, a scalar; with itm, in training, the
/// matching logits [3B, 2] of each pair, then of each text with a hard negative image, then of
/// each image with a hard negative text (class 1 = match; absent when the batch has no
/// negatives); with itm, in eval mode, the encoders' tokens (image [N, 1 + P, Dv], text
/// [B, L, Dt]) for re-ranking pairs by the matching head.
namespace dual_outputs {
inline const std::string image_embeds = "image_embeds";
inline const std::string text_embeds = "text_embeds";
inline const std::string logit_scale = "logit_scale";
inline const std::string itm_logits = "itm_logits";
inline const std::string image_tokens = "image_tokens";
inline const std::string text_tokens = "text_tokens";
}  // namespace dual_outputs

class DualEncoderImpl : public TaskHead {
 public:
  /// `sizes` has both encoders (and the fusion, with itm).
  DualEncoderImpl(const HeadSizes& sizes, int64_t embed_dim, bool itm);

  void attach(ModelImpl& model) override;
  /// image_embeds [N, E] (the distinct images), text_embeds [B, E], logit_scale; in training
  /// with itm, itm_logits of each pair and of its hard negatives; in eval mode with itm, the
  /// encoders' tokens for re-ranking.
  void forward(ModelImpl& model, const Encoded& in, ModelOutput& out) override;

  /// The L2-normalised embeddings of image tokens [N, 1 + P, Dv] and of text tokens [B, L, Dt].
  torch::Tensor embed_image_tokens(const torch::Tensor& image_tokens);
  torch::Tensor embed_text_tokens(const torch::Tensor& text_tokens);
  /// Matching logits [B, 2] (class 1 = match) of image tokens with text tokens.
  torch::Tensor itm_logits(ModelImpl& model, const torch::Tensor& image_tokens,
                           const torch::Tensor& text_tokens, const torch::Tensor& text_padding);

  Linear image_projection = nullptr;  // ViT [CLS] -> embedding
  Linear text_projection = nullptr;   // BERT [CLS] -> embedding
  torch::Tensor logit_scale;          // log of the inverse temperature
  Linear itm_head = nullptr;          // with itm: registered as "head"

 private:
  bool itm_ = false;
  int64_t fusion_dim_ = 0;
};

/// The head of `model` as a retrieval model's dual encoder, or null for another task.
DualEncoderImpl* dual_encoder(ModelImpl& model);
const DualEncoderImpl* dual_encoder(const ModelImpl& model);

/// A retrieval model's L2-normalised embeddings of images [N, 3, H, W] -> [N, E] and of texts
/// (input_ids [B, L], mask and types may be undefined) -> [B, E]: what forward() returns as
/// image_embeds and text_embeds, one encoder at a time (an index of images, a text query).
/// Throw c10::Error for a model of another task.
torch::Tensor embed_images(ModelImpl& model, const torch::Tensor& images);
torch::Tensor embed_texts(ModelImpl& model, const torch::Tensor& input_ids,
                          const torch::Tensor& attention_mask = {},
                          const torch::Tensor& token_type_ids = {});

/// A retrieval model's matching logits [B, 2] of image tokens [B, 1 + P, Dv] with text tokens
/// [B, L, Dt] (padding [B, L] bool, true = padding, or undefined).
torch::Tensor itm_logits(ModelImpl& model, const torch::Tensor& image_tokens,
                         const torch::Tensor& text_tokens, const torch::Tensor& text_padding);

}  // namespace xmodal::models
