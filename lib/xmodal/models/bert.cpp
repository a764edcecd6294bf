#include "xmodal/models/bert.h"

#include <torch/torch.h>

namespace xmodal::models {

BertEmbeddingsImpl::BertEmbeddingsImpl(const BertOptions& options_) : options(options_) { reset(); }

void BertEmbeddingsImpl::reset() {
  const int64_t d = options.hidden();
  word = register_module("word", torch::nn::Embedding(options.vocab_size(), d));
  position = register_module("position", torch::nn::Embedding(options.max_position(), d));
  token_type = register_module("token_type", torch::nn::Embedding(options.type_vocab(), d));
  norm = register_module("norm",
                         torch::nn::LayerNorm(torch::nn::LayerNormOptions({d}).eps(options.eps())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  // BERT's init: N(0, 0.02) for every embedding, the [PAD] row zero.
  torch::NoGradGuard no_grad;
  for (auto* table : {&word, &position, &token_type}) (*table)->weight.normal_(0.0, 0.02);
  if (options.pad_id() >= 0 && options.pad_id() < options.vocab_size()) {
    word->weight[options.pad_id()].zero_();
  }
}

torch::Tensor BertEmbeddingsImpl::forward(const torch::Tensor& input_ids,
                                          const torch::Tensor& token_type_ids,
                                          int64_t first_position) {
  const int64_t length = first_position + input_ids.size(1);
  TORCH_CHECK(length <= options.max_position(), "BERT: input of ", length,
              " tokens is longer than max_position (", options.max_position(), ")");
  auto positions = torch::arange(first_position, length, input_ids.options().dtype(torch::kLong));
  // x: [B, L, D]
  auto x = word(input_ids) + position(positions).unsqueeze(0) + token_type(token_type_ids);
  return dropout(norm(x));
}

void BertPoolerImpl::reset() { dense = register_module("dense", Linear(hidden, hidden)); }

torch::Tensor BertPoolerImpl::forward(const torch::Tensor& tokens) {
  return torch::tanh(dense(tokens.select(1, 0)));
}

BertImpl::BertImpl(const BertOptions& options_) : options(options_) {
  TORCH_CHECK(options.vocab_size() > 0, "BERT: vocab_size (", options.vocab_size(),
              ") must be positive");
  TORCH_CHECK(options.hidden() % options.heads() == 0, "BERT: hidden_size (", options.hidden(),
              ") must be divisible by num_heads (", options.heads(), ")");
  reset();
}

void BertImpl::reset() {
  embeddings = register_module("embeddings", BertEmbeddings(options));
  layers = register_module(
      "layers",
      make_encoder_layers(options.layers(), EncoderLayerOptions(options.hidden(), options.heads(),
                                                                options.intermediate())
                                                .dropout(options.dropout())
                                                .attention_dropout(options.attention_dropout())
                                                .eps(options.eps())
                                                .norm_first(false)));
  if (options.pooler()) pooler = register_module("pooler", BertPooler(options.hidden()));
  // BERT's init for linear layers: N(0, 0.02), zero bias.
  torch::NoGradGuard no_grad;
  for (auto& module : modules(/*include_self=*/false)) {
    if (auto* linear = module->as<Linear>()) {
      linear->weight.normal_(0.0, 0.02);
      linear->bias.zero_();
    }
  }
}

torch::Tensor BertImpl::forward(const torch::Tensor& input_ids, const torch::Tensor& attention_mask,
                                const torch::Tensor& token_type_ids) {
  TORCH_CHECK(input_ids.dim() == 2, "BERT: expected input_ids [B, L], got ", input_ids.sizes());
  auto types = token_type_ids.defined() ? token_type_ids : torch::zeros_like(input_ids);
  auto x = embeddings(input_ids, types);
  torch::Tensor padding;  // [B, L] bool, true = padding
  if (attention_mask.defined()) {
    TORCH_CHECK(attention_mask.sizes() == input_ids.sizes(), "BERT: attention_mask ",
                attention_mask.sizes(), " does not match input_ids ", input_ids.sizes());
    padding = attention_mask.eq(0);
  }
  x = run_encoder_layers(layers, x, padding);
  return x;
}

torch::Tensor BertImpl::forward_causal(const torch::Tensor& input_ids, int64_t first_position,
                                       std::vector<KvCache>& caches) {
  TORCH_CHECK(input_ids.dim() == 2, "BERT: expected input_ids [B, n], got ", input_ids.sizes());
  caches.resize(layers->size());
  TORCH_CHECK(caches.empty() || caches[0].length() == first_position, "BERT: the caches hold ",
              caches.empty() ? 0 : caches[0].length(), " tokens, the input starts at position ",
              first_position);
  const int64_t n = input_ids.size(1);
  auto x = embeddings(input_ids, torch::zeros_like(input_ids), first_position);
  // row i (position T + i) sees columns 0 .. T + i; a single new token sees everything
  const torch::Tensor allowed =
      n == 1 ? torch::Tensor() : seq2seq_mask(0, first_position + n).narrow(0, first_position, n);
  for (size_t i = 0; i < caches.size(); ++i) {
    x = layers[i]->as<EncoderLayer>()->forward_cached(x, caches[i], allowed);
  }
  return x;
}

torch::Tensor BertImpl::pool(const torch::Tensor& tokens) {
  TORCH_CHECK(pooler, "BERT: built without a pooler (options.pooler = false)");
  return pooler(tokens);
}

}  // namespace xmodal::models
