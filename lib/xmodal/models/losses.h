// Task losses (docs/design.md section 3), returned as sums over the samples of the batch so that
// the trainer can divide by the samples of a whole accumulation group: k micro-batches then give
// exactly the gradient of one k-times-larger batch, whatever their sizes.
#pragma once

#include <torch/torch.h>

#include "xmodal/models/model.h"

namespace xmodal::models {

struct LossWeights {
  double presence = 1.0;         ///< counting: presence BCE
  double count = 1.0;            ///< counting: count cross-entropy
  double itm = 0.0;              ///< retrieval: image-text matching cross-entropy (train.itm)
  double label_smoothing = 0.0;  ///< caption: of the next-token cross-entropy (training only)
};

struct LossSums {
  torch::Tensor total;     ///< scalar: sum over samples of each sample's weighted loss
  torch::Tensor presence;  ///< counting: the presence part (unweighted), detached
  torch::Tensor count;     ///< counting: the count part (unweighted), detached
};

/// vqa: BCE-with-logits against the soft scores, summed over answers (ViLT / Hugging Face scale
/// the mean by the number of answers: the same per sample). logits, targets [B, A].
LossSums vqa_loss(const torch::Tensor& logits, const torch::Tensor& targets);

/// counting: presence BCE (target: count > 0 or a crowd region) averaged over categories, plus
/// count cross-entropy averaged over categories, leaving out (image, category) pairs whose count
/// is unknown (crowd). presence [B, C], counts [B, C, K+1], targets [B, C] int64 (clamped to K),
/// crowd [B, C] bool or undefined.
LossSums counting_loss(const torch::Tensor& presence, const torch::Tensor& counts,
                       const torch::Tensor& targets, const torch::Tensor& crowd,
                       const LossWeights& weights);

/// classify: cross-entropy of logits [B, K] against labels [B] int64.
LossSums classify_loss(const torch::Tensor& logits, const torch::Tensor& labels);

/// retrieval, ITC: the symmetric InfoNCE loss of CLIP, one value per pair [G]: row i is
/// (CE of image i over the texts + CE of text i over the images) / 2, with logits
/// logit_scale * image_embeds text_embeds^T. image_embeds, text_embeds [G, E] (row i a pair).
/// Pairs with the same image key or the same text key are all positives (the target spreads
/// evenly over them, as ALBEF's soft targets), so a caption shared by several images, or an
/// image sampled twice, is never pushed away from itself; with distinct keys this is CLIP's
/// loss exactly.
torch::Tensor contrastive_loss_rows(const torch::Tensor& image_embeds,
                                    const torch::Tensor& text_embeds,
                                    const torch::Tensor& logit_scale,
                                    const torch::Tensor& image_keys,
                                    const torch::Tensor& text_keys);

/// retrieval, ITM: cross-entropy of matching logits [R, 2] whose first `positives` rows are
/// matching pairs and the rest not, summed and scaled to `samples` (the mean over the rows times
/// the samples of the batch, so a loss sum like the others).
torch::Tensor itm_loss(const torch::Tensor& logits, int64_t positives, int64_t samples);

/// Dense auxiliary loss: BCE-with-logits of each patch's category logits against the multi-hot
/// object-centre targets, summed over categories and averaged over patches. logits, targets
/// [B, P, C].
torch::Tensor dense_loss(const torch::Tensor& logits, const torch::Tensor& targets);

/// Locating auxiliary loss: cross-entropy of the leftmost and the rightmost object's category,
/// summed over the two and the samples, leaving out targets of -1 (no object in view).
/// logits [B, 2, C], targets [B, 2] int64.
torch::Tensor locate_loss(const torch::Tensor& logits, const torch::Tensor& targets);

// ---- knowledge distillation (train.distill) --------------------------------------------------
// Each term is a sum over the samples of the batch, like the task losses, of how far the
// student's outputs are from the teacher's (no gradient reaches the teacher), both divided by
// the temperature T, times T^2 (Hinton et al. 2015: the gradients keep their scale as T grows).

/// Independent sigmoid outputs (vqa's soft scores, counting's presence): BCE-with-logits of
/// student / T against sigmoid(teacher / T), summed over the last dimension and the samples,
/// times T^2 / `per_sample` (the counting head averages over its categories: per_sample = C).
/// student, teacher [B, K].
torch::Tensor distill_sigmoid(const torch::Tensor& student, const torch::Tensor& teacher,
                              double temperature, double per_sample = 1.0);

/// Softmax outputs over the last dimension (classify's classes, counting's count classes):
/// KL(softmax(teacher / T) || softmax(student / T)) summed over every distribution of the
/// batch, times T^2 / `per_sample`. student, teacher [B, K] or [B, C, K].
torch::Tensor distill_softmax(const torch::Tensor& student, const torch::Tensor& teacher,
                              double temperature, double per_sample = 1.0);

/// retrieval: the similarity distributions of the contrastive space. logits [B, N] (text b
/// against the batch's N distinct images, the logit scale applied) of the student and of the
/// teacher: KL over each text's row (text -> image) and each image's column (image -> text),
/// the two directions averaged with the columns weighted B / N, so a sum over the B samples,
/// times T^2.
torch::Tensor distill_similarity(const torch::Tensor& student, const torch::Tensor& teacher,
                                 double temperature);

/// Feature distillation (train.distill.features): the squared difference of the student's and
/// the teacher's tokens [B, T, D], averaged over the tokens and the width, summed over the
/// samples.
torch::Tensor distill_features(const torch::Tensor& student, const torch::Tensor& teacher);

}  // namespace xmodal::models
