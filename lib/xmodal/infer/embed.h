// Feature extraction: `xmodal embed` writes the encoders' final hidden states to safetensors.
//
// Tensors written (N inputs, in order):
//   vision     [N, 1 + P, Dv]  the ViT's tokens after its final LayerNorm (Hugging Face's
//                              last_hidden_state); with images
//   text       [N, L, Dt]      BERT's last hidden state; with texts
//   text_mask  [N, L]          1 = real token, 0 = padding (int64)
//   text_ids   [N, L]          the tokenizer's ids ([CLS] ... [SEP], then [PAD]; int64)
//   text_pooled [N, Dt]        with EmbedOptions::pool: one L2-normalised vector per text, the
//                              mean of its real tokens (sentence-transformers' Pooling with
//                              mean tokens, then Normalize) or its [CLS] token
//   fusion     [N, T, D]       the fusion transformer's tokens; with images and texts and a
//   pooled     [N, D]          trained checkpoint (a config's fusion would be untrained)
//   image_embeds [N, E]        a retrieval checkpoint's L2-normalised image embeddings, and
//   text_embeds  [N, E]        text embeddings (in input order: R@K recomputed from them equals
//                              `xmodal eval`'s)
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::infer {

struct EmbedOptions {
  std::string config;                  ///< a YAML config (encoders from model.*.pretrained), or
  std::string checkpoint;              ///< an xmodal checkpoint (exactly one of the two)
  std::vector<std::string> overrides;  ///< --set assignments for the config
  std::vector<std::string> images;     ///< image files
  std::vector<std::string> texts;      ///< texts; with images, one per image (or one for all)
  std::string input;                   ///< JSONL, one {"image": P, "text": T} per line
  bool no_resize = false;              ///< images are already at data.image_size: only normalised
  int batch_size = 32;
  std::string pool = "none";  ///< text_pooled: none | mean | cls
  std::string out;            ///< the .safetensors file to write (atomically)
};

struct EmbedResult {
  int64_t count = 0;                 ///< inputs embedded
  std::vector<std::string> tensors;  ///< names written
};

/// Encodes the inputs and writes EmbedOptions::out. Throws std::invalid_argument for bad
/// options or input (naming the file and line), std::runtime_error for unreadable files.
EmbedResult embed(const EmbedOptions& options);

}  // namespace xmodal::infer
