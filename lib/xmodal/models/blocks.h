// Transformer building blocks shared by ViT, BERT and the fusion transformer.
//
// They live in one header because they are small and always used together; each still follows
// the module pattern (Options, Impl, TORCH_MODULE). Parameter names are a file format:
//   attention.qkv.{weight,bias}   fused [3D, D] query/key/value projection (PyTorch's in_proj)
//   attention.out.{weight,bias}
//   mlp.fc1, mlp.fc2
//   norm1, norm2                  LayerNorms (before the sublayers in pre-norm, after in post-norm)
#pragma once

#include <torch/nn.h>

#include "xmodal/models/linear.h"

namespace xmodal::models {

/// GELU, exact erf form (BERT, ViT): x * 0.5 * (1 + erf(x / sqrt(2))).
torch::Tensor exact_gelu(const torch::Tensor& x);

struct MultiHeadAttentionOptions {
  MultiHeadAttentionOptions(int64_t dim, int64_t heads) : dim_(dim), heads_(heads) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, heads);
  /// Dropout on the attention probabilities.
  TORCH_ARG(double, dropout) = 0.0;
  /// Use the fused CPU kernel (models/attention.h) where it applies: float32 on the CPU, no
  /// attention dropout while training, attention maps not kept. false = ATen ops only.
  TORCH_ARG(bool, fused) = true;
};

/// The keys and values a layer's attention computed for the tokens before the current ones
/// ([B, H, T, Dh] each; undefined: none yet): left-to-right decoding (captioning) runs one token
/// at a time over them instead of re-running the sequence.
struct KvCache {
  torch::Tensor k, v;
  int64_t length() const { return k.defined() ? k.size(2) : 0; }
  /// Keeps the rows `index` [B'] (beam search's surviving hypotheses).
  void select(const torch::Tensor& index);
};

/// allowed[i][j] for a sequence of `prefix` tokens that attend to each other followed by
/// `length` tokens that attend to the prefix and, left to right, to themselves and the tokens
/// before them: [prefix + length, prefix + length] bool (true = may attend). The unified
/// encoder-decoder's sequence-to-sequence mask (Zhou et al. 2020); prefix 0: a causal mask.
torch::Tensor seq2seq_mask(int64_t prefix, int64_t length);

/// Multi-head self-attention with a key-padding mask.
class MultiHeadAttentionImpl : public torch::nn::Cloneable<MultiHeadAttentionImpl> {
 public:
  explicit MultiHeadAttentionImpl(const MultiHeadAttentionOptions& options);
  void reset() override;

  /// x: [B, L, D]; key_padding_mask: [B, L] bool, true = padding (ignored as a key), or
  /// undefined. Only the first `queries` tokens attend (-1 = all, the usual): returns
  /// [B, queries, D], e.g. the [CLS] row alone when that is all a head reads.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask = {},
                        int64_t queries = -1);
  /// x: [B, n, D], the tokens after the cache's T; they attend to the cache's keys and values
  /// followed by their own as `allowed` [n, T + n] bool (true = may attend; undefined: all)
  /// says, and their keys and values are appended to `cache`. Returns [B, n, D]. With an empty
  /// cache and seq2seq_mask() this is teacher-forced training over the whole sequence.
  torch::Tensor forward_cached(const torch::Tensor& x, KvCache& cache,
                               const torch::Tensor& allowed = {});

  MultiHeadAttentionOptions options;
  Linear qkv = nullptr;
  Linear out = nullptr;
  torch::nn::Dropout dropout = nullptr;
  /// When set, forward() keeps its attention probabilities [B, H, L, L] (before dropout, part
  /// of the autograd graph) in `attention`, for explanations. Off by default: no cost.
  bool keep_attention = false;
  torch::Tensor attention;
};
TORCH_MODULE(MultiHeadAttention);

struct MlpOptions {
  MlpOptions(int64_t dim, int64_t hidden) : dim_(dim), hidden_(hidden) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, hidden);
  /// Dropout after the activation and after fc2.
  TORCH_ARG(double, dropout) = 0.0;
};

/// fc1 -> GELU -> dropout -> fc2 -> dropout.
class MlpImpl : public torch::nn::Cloneable<MlpImpl> {
 public:
  explicit MlpImpl(const MlpOptions& options);
  void reset() override;
  torch::Tensor forward(const torch::Tensor& x);

  MlpOptions options;
  Linear fc1 = nullptr;
  Linear fc2 = nullptr;
  torch::nn::Dropout dropout = nullptr;
};
TORCH_MODULE(Mlp);

struct EncoderLayerOptions {
  EncoderLayerOptions(int64_t dim, int64_t heads, int64_t mlp_dim)
      : dim_(dim), heads_(heads), mlp_dim_(mlp_dim) {}
  TORCH_ARG(int64_t, dim);
  TORCH_ARG(int64_t, heads);
  TORCH_ARG(int64_t, mlp_dim);
  /// Dropout on each sublayer's output (and inside the MLP).
  TORCH_ARG(double, dropout) = 0.0;
  /// Dropout on attention probabilities.
  TORCH_ARG(double, attention_dropout) = 0.0;
  /// LayerNorm epsilon (ViT 1e-6 in torchvision, 1e-12 in Hugging Face ViT/BERT).
  TORCH_ARG(double, eps) = 1e-6;
  /// true: x + f(norm(x)) (ViT, pre-norm); false: norm(x + f(x)) (BERT, post-norm).
  TORCH_ARG(bool, norm_first) = true;
};

/// One transformer encoder layer: self-attention and MLP sublayers with residuals.
class EncoderLayerImpl : public torch::nn::Cloneable<EncoderLayerImpl> {
 public:
  explicit EncoderLayerImpl(const EncoderLayerOptions& options);
  void reset() override;
  /// x: [B, L, D], key_padding_mask: [B, L] bool (true = padding) or undefined -> [B, L, D].
  /// With `queries` >= 1 only the first `queries` tokens are computed (they still attend to
  /// every token): [B, queries, D], the same values as the full output's first rows.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& key_padding_mask = {},
                        int64_t queries = -1);
  /// The layer on the tokens after `cache`'s (MultiHeadAttention::forward_cached).
  torch::Tensor forward_cached(const torch::Tensor& x, KvCache& cache,
                               const torch::Tensor& allowed = {});

  EncoderLayerOptions options;
  torch::nn::LayerNorm norm1 = nullptr;
  MultiHeadAttention attention = nullptr;
  torch::nn::LayerNorm norm2 = nullptr;
  Mlp mlp = nullptr;
  torch::nn::Dropout dropout = nullptr;
};
TORCH_MODULE(EncoderLayer);

/// `count` encoder layers with the same options (ViT, BERT and fusion stacks).
torch::nn::ModuleList make_encoder_layers(int64_t count, const EncoderLayerOptions& options);

/// Runs `x` through a stack made by make_encoder_layers.
torch::Tensor run_encoder_layers(const torch::nn::ModuleList& layers, torch::Tensor x,
                                 const torch::Tensor& key_padding_mask = {});

/// Truncated-normal-like init used by ViT/BERT: N(0, std) clipped to +-2 std.
void init_trunc_normal_(torch::Tensor& t, double std);

}  // namespace xmodal::models
