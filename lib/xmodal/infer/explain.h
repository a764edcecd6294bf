// The relevance rules behind `xmodal explain` (infer::Predictor::explain), on the attention maps
// of one transformer stack (the ViT's layers, BERT's, or the fusion's):
//
//   rollout   attention rollout (Abnar & Zuidema 2020): the product of the layers' head-mean
//             attention, each mixed half and half with the identity for the residual path.
//   chefer    Chefer, Gur & Wolf 2021 ("Generic Attention-model Explainability for
//             Interpreting Bi-Modal and Encoder-Decoder Transformers", arXiv 2103.15679): R =
//             I, then per layer R += mean_h((dy/dA ⊙ A)^+) R, the attention weighted by the
//             gradient of the explained output, positive part only.
//
// A model is several stacks in a row (the image encoder's, the text encoder's, then the
// fusion's over [CLS] [text] [image CLS] [patches]); compose_relevance() follows the fusion's
// relevance into the encoders' own tokens, through each encoder's relevance normalised as
// Chefer et al. do for a modality's self-relevance (eq. 8-9).
#pragma once

#include <torch/types.h>

#include <vector>

namespace xmodal::infer {

/// One attention layer of one sample: probabilities [H, T, T] and, for chefer, the gradient of
/// the explained output with respect to them (same shape).
struct AttentionMap {
  torch::Tensor probs, grad;
};

/// Attention rollout of a stack [T, T] float64 (rows sum to 1); `length` T for an empty stack
/// (the identity).
torch::Tensor rollout_relevance(const std::vector<AttentionMap>& layers, int64_t length);

/// Chefer et al.'s gradient-weighted relevance of a stack [T, T] float64 (the identity plus
/// non-negative terms). Every layer needs `grad`.
torch::Tensor chefer_relevance(const std::vector<AttentionMap>& layers, int64_t length);

/// A modality's self-relevance as Chefer et al. pass it on (eq. 8-9): R - I with each row
/// scaled to sum 1 (rows without mass stay 0), plus I. Rows of a rollout (already stochastic)
/// pass unchanged but for the diagonal share, so use it for chefer only.
torch::Tensor normalize_self_relevance(const torch::Tensor& relevance);

}  // namespace xmodal::infer
