// Task caption: image -> text with the same encoders and the concat fusion used as a
// left-to-right decoder (the unified vision-language model of Zhou et al. 2020): the sequence
// [fusion CLS ; image tokens ; caption tokens] runs through the fusion layers under a
// sequence-to-sequence mask (the image part attends to itself; each caption token to the image
// part, to itself and to the caption tokens before it), the text encoder runs left to right
// too, and a BERT-style LM head on the caption tokens predicts the next token. Training is
// teacher-forced cross-entropy with label smoothing (train.loss.label_smoothing); generation is
// beam search (eval.caption.*) with a key/value cache per layer (models/blocks.h KvCache), so a
// generated token costs one token's pass through the layers. Scores: COCO's BLEU-1..4,
// ROUGE-L and CIDEr-D as the official code computes them (tasks/caption_metrics.h).
//
// Why the fusion and not a separate cross-attention decoder (BLIP's): the concat fusion already
// holds the image-text layers that VQA and retrieval train, so a caption model is the same
// parameter set with one more head, and its checkpoints fine-tune across tasks; the mask costs
// nothing at these sizes (docs/caption.md).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "xmodal/config/config.h"
#include "xmodal/data/dataset.h"
#include "xmodal/models/model.h"

namespace xmodal::tasks {

/// An image's reference captions (the targets of its evaluation).
struct CaptionAnnotation : data::Annotation {
  std::vector<std::string> references;
};

/// The names of a caption model's outputs (ModelOutput::outputs).
namespace caption_outputs {
/// Teacher-forced next-token logits [B, L, V]: row t predicts token t + 1 of input_ids.
inline constexpr const char* logits = "logits";
/// Generated hypotheses, best first, without [CLS] and [SEP]: ids [B, K, T] (-1 after the
/// end), their lengths [B, K] and their scores [B, K] (log p / length^length_penalty).
inline constexpr const char* ids = "caption_ids";
inline constexpr const char* lengths = "caption_lengths";
inline constexpr const char* scores = "caption_scores";
/// Their log-probabilities [B, K] ([SEP] included).
inline constexpr const char* log_probs = "caption_log_probs";
}  // namespace caption_outputs

/// Generated hypotheses (caption_outputs::ids, lengths, scores, log_probs).
struct Generated {
  torch::Tensor ids, lengths, scores, log_probs;
};

/// Teacher-forced next-token logits [B, L, V] of a caption model for image tokens [B, 1 + P, Dv]
/// and token ids [B, L] ([CLS] caption [SEP] [PAD]...).
torch::Tensor caption_logits(models::ModelImpl& model, const torch::Tensor& image_tokens,
                             const torch::Tensor& input_ids);

/// Beam search from [CLS] (`cls_id`) to [SEP] (`sep_id`) with the layers' key/value caches.
/// beam_size 1 is greedy decoding. [CLS] is never generated; [SEP] not before min_length
/// tokens and always after max_length.
Generated generate_captions(models::ModelImpl& model, const torch::Tensor& image_tokens,
                            int64_t cls_id, int64_t sep_id,
                            const config::CaptionGenerationConfig& options);

/// The text of generated ids through the vocabulary (`classes` of a caption model): WordPiece's
/// "##" pieces joined to the word before them, SentencePiece's "\u2581" read as a space, special
/// tokens ([PAD] [CLS] ...) left out.
std::string caption_text(const std::vector<std::string>& vocabulary, const int64_t* ids,
                         int64_t length);

}  // namespace xmodal::tasks
