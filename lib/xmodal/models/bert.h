// BERT encoder (Devlin et al.): word + position + token-type embeddings, post-norm layers,
// optional pooler.
//
// Parameter names (a file format; Hugging Face names map onto them in models/import.h):
//   embeddings.word.weight          [vocab_size, hidden]
//   embeddings.position.weight      [max_position, hidden]
//   embeddings.token_type.weight    [type_vocab, hidden]
//   embeddings.norm.{weight,bias}
//   layers.N.*                      EncoderLayer (post-norm), see blocks.h
//   pooler.dense.{weight,bias}      when options.pooler
#pragma once

#include <torch/nn.h>

#include <vector>

#include "xmodal/models/blocks.h"
#include "xmodal/models/linear.h"

namespace xmodal::models {

struct BertOptions {
  BertOptions(int64_t vocab_size, int64_t hidden, int64_t layers, int64_t heads,
              int64_t intermediate)
      : vocab_size_(vocab_size),
        hidden_(hidden),
        layers_(layers),
        heads_(heads),
        intermediate_(intermediate) {}
  TORCH_ARG(int64_t, vocab_size);
  TORCH_ARG(int64_t, hidden);
  TORCH_ARG(int64_t, layers);
  TORCH_ARG(int64_t, heads);
  /// Feed-forward width.
  TORCH_ARG(int64_t, intermediate);
  /// Learned positions; inputs may not be longer.
  TORCH_ARG(int64_t, max_position) = 512;
  /// Token-type (segment) vocabulary.
  TORCH_ARG(int64_t, type_vocab) = 2;
  /// Dropout after the embeddings and inside every layer.
  TORCH_ARG(double, dropout) = 0.0;
  /// Dropout on attention probabilities.
  TORCH_ARG(double, attention_dropout) = 0.0;
  /// LayerNorm epsilon.
  TORCH_ARG(double, eps) = 1e-12;
  /// Id of [PAD]; its word embedding starts at zero.
  TORCH_ARG(int64_t, pad_id) = 0;
  /// Build the pooler (dense + tanh on the [CLS] token).
  TORCH_ARG(bool, pooler) = true;
};

struct BertEmbeddingsImpl : torch::nn::Cloneable<BertEmbeddingsImpl> {
  explicit BertEmbeddingsImpl(const BertOptions& options);
  void reset() override;
  /// input_ids, token_type_ids: [B, L] int64 -> [B, L, hidden]; the tokens sit at positions
  /// first_position.. (left-to-right decoding embeds one token at a time).
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& token_type_ids,
                        int64_t first_position = 0);

  BertOptions options;
  torch::nn::Embedding word = nullptr;
  torch::nn::Embedding position = nullptr;
  torch::nn::Embedding token_type = nullptr;
  torch::nn::LayerNorm norm = nullptr;
  torch::nn::Dropout dropout = nullptr;
};
TORCH_MODULE(BertEmbeddings);

struct BertPoolerImpl : torch::nn::Cloneable<BertPoolerImpl> {
  explicit BertPoolerImpl(int64_t hidden) : hidden(hidden) { reset(); }
  void reset() override;
  /// tokens: [B, L, D] -> tanh(dense(tokens[:, 0])): [B, D].
  torch::Tensor forward(const torch::Tensor& tokens);

  int64_t hidden;
  Linear dense = nullptr;
};
TORCH_MODULE(BertPooler);

class BertImpl : public torch::nn::Cloneable<BertImpl> {
 public:
  explicit BertImpl(const BertOptions& options);
  void reset() override;

  /// input_ids: [B, L] int64; attention_mask: [B, L] (1 = real token, 0 = padding; any
  /// integer or bool dtype) or undefined (all real); token_type_ids: [B, L] or undefined (all 0).
  /// Returns the last hidden state [B, L, hidden].
  torch::Tensor forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask = {},
                        const torch::Tensor& token_type_ids = {});

  /// Left-to-right encoding (captioning): tokens [B, n] at positions T.. (T = first_position)
  /// attend to themselves, to the tokens before them and to the T earlier tokens whose keys and
  /// values `caches` (one per layer; resized on first use and appended to) hold. Returns
  /// [B, n, hidden].
  torch::Tensor forward_causal(const torch::Tensor& input_ids, int64_t first_position,
                               std::vector<KvCache>& caches);

  /// The pooler output for encoded tokens: [B, L, D] -> [B, D]. Requires options.pooler.
  torch::Tensor pool(const torch::Tensor& tokens);

  int64_t output_dim() const { return options.hidden(); }

  BertOptions options;
  BertEmbeddings embeddings = nullptr;
  torch::nn::ModuleList layers = nullptr;
  BertPooler pooler = nullptr;
};
TORCH_MODULE(Bert);

}  // namespace xmodal::models
