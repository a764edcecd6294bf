#include "xmodal/models/blocks.h"

#include "xmodal/models/attention.h"

#include <torch/torch.h>
#include <cmath>
#include <optional>

namespace xmodal::models {

torch::Tensor exact_gelu(const torch::Tensor& x) { return torch::gelu(x); }  // "none" = exact erf

void init_trunc_normal_(torch::Tensor& t, double std) {
  torch::NoGradGuard no_grad;
  t.normal_(0.0, std).clamp_(-2.0 * std, 2.0 * std);
}

MultiHeadAttentionImpl::MultiHeadAttentionImpl(const MultiHeadAttentionOptions& options_)
    : options(options_) {
  TORCH_CHECK(options.dim() > 0 && options.heads() > 0, "MultiHeadAttention: dim (", options.dim(),
              ") and heads (", options.heads(), ") must be positive");
  TORCH_CHECK(options.dim() % options.heads() == 0, "MultiHeadAttention: dim (", options.dim(),
              ") must be divisible by heads (", options.heads(), ")");
  reset();
}

void MultiHeadAttentionImpl::reset() {
  const int64_t d = options.dim();
  qkv = register_module("qkv", Linear(d, 3 * d));
  out = register_module("out", Linear(d, d));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
  // Same init as PyTorch's nn.MultiheadAttention: xavier-uniform weights, zero biases.
  torch::NoGradGuard no_grad;
  torch::nn::init::xavier_uniform_(qkv->weight);
  torch::nn::init::zeros_(qkv->bias);
  torch::nn::init::zeros_(out->bias);
}

torch::Tensor MultiHeadAttentionImpl::forward(const torch::Tensor& x,
                                              const torch::Tensor& key_padding_mask,
                                              int64_t queries) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.dim(),
              "MultiHeadAttention: expected input [B, L, ", options.dim(), "], got ", x.sizes());
  const int64_t batch = x.size(0), length = x.size(1), heads = options.heads();
  const int64_t head_dim = options.dim() / heads;
  const double scale = 1.0 / std::sqrt(double(head_dim));
  if (queries < 0) queries = length;
  TORCH_CHECK(queries >= 1 && queries <= length, "MultiHeadAttention: queries (", queries,
              ") must be 1..", length);
  if (key_padding_mask.defined()) {
    TORCH_CHECK(key_padding_mask.sizes() == torch::IntArrayRef({batch, length}),
                "MultiHeadAttention: key_padding_mask must be [", batch, ", ", length, "], got ",
                key_padding_mask.sizes());
  }
  const auto projected = qkv(x);  // [B, L, 3D]
  // Which kernel, as scripts/bench/attention.sh measured them at the model's shapes (AMD EPYC
  // Zen 4, LibTorch 2.11, docs/performance.md): with gradients, xmodal's fused kernel (1.1-3.6x
  // LibTorch's scaled_dot_product_attention); without, SDPA (1.5-2.1x the fused kernel); bf16
  // (autocast), the ATen composition below (SDPA's bf16 backward is 4-8x slower). On CUDA, SDPA.
  if (options.fused() && !keep_attention && (options.dropout() == 0.0 || !is_training())) {
    const bool grad = torch::GradMode::is_enabled() && projected.requires_grad();
    if (grad && fused_attention_available(projected)) {
      return out(fused_attention(projected, key_padding_mask, heads, scale, queries));
    }
    if ((projected.is_cuda() || (!grad && projected.scalar_type() == torch::kFloat32)) &&
        sdpa_attention_applies(key_padding_mask)) {
      return out(sdpa_attention(projected, key_padding_mask, heads, scale, queries));
    }
  }
  // qkv: [B, L, 3D] -> [3, B, H, L, Dh]
  auto qkv_heads = projected.view({batch, length, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  auto q = qkv_heads[0].narrow(2, 0, queries), k = qkv_heads[1], v = qkv_heads[2];
  // scores: [B, H, Q, L]
  auto scores = torch::matmul(q, k.transpose(-2, -1)) * scale;
  if (key_padding_mask.defined()) {
    // -inf would turn a fully padded row into NaN; the dtype's lowest value gives zeros there.
    // (scores are bfloat16 under train.precision bf16: its lowest value is not float's.)
    const double lowest = scores.scalar_type() == torch::kFloat64
                              ? std::numeric_limits<double>::lowest()
                          : scores.scalar_type() == torch::kBFloat16
                              ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                          : scores.scalar_type() == torch::kHalf
                              ? static_cast<double>(std::numeric_limits<c10::Half>::lowest())
                              : static_cast<double>(std::numeric_limits<float>::lowest());
    scores = scores.masked_fill(key_padding_mask.view({batch, 1, 1, length}), lowest);
  }
  auto probs = torch::softmax(scores, -1);
  if (keep_attention) {
    if (probs.requires_grad()) probs.retain_grad();
    attention = probs;
  }
  probs = dropout(probs);
  // context: [B, H, Q, Dh] -> [B, Q, D]
  auto context = torch::matmul(probs, v).transpose(1, 2).reshape({batch, queries, options.dim()});
  return out(context);
}

void KvCache::select(const torch::Tensor& index) {
  if (!k.defined()) return;
  k = k.index_select(0, index);
  v = v.index_select(0, index);
}

torch::Tensor seq2seq_mask(int64_t prefix, int64_t length) {
  const int64_t n = prefix + length;
  const auto row = torch::arange(n, torch::kLong).unsqueeze(1);
  const auto col = torch::arange(n, torch::kLong).unsqueeze(0);
  // every token sees the prefix; a token after it also sees those up to itself
  return col.lt(prefix).logical_or(row.ge(prefix).logical_and(col.le(row)));
}

torch::Tensor MultiHeadAttentionImpl::forward_cached(const torch::Tensor& x, KvCache& cache,
                                                     const torch::Tensor& allowed) {
  TORCH_CHECK(x.dim() == 3 && x.size(2) == options.dim(),
              "MultiHeadAttention: expected input [B, n, ", options.dim(), "], got ", x.sizes());
  const int64_t batch = x.size(0), n = x.size(1), heads = options.heads();
  const int64_t head_dim = options.dim() / heads;
  // [B, n, 3D] -> [3, B, H, n, Dh]
  const auto parts = qkv(x).view({batch, n, 3, heads, head_dim}).permute({2, 0, 3, 1, 4});
  auto k = parts[1], v = parts[2];
  if (cache.k.defined()) {
    TORCH_CHECK(cache.k.size(0) == batch, "MultiHeadAttention: the cache holds ", cache.k.size(0),
                " rows, the input ", batch);
    k = torch::cat({cache.k, k}, 2);
    v = torch::cat({cache.v, v}, 2);
  }
  cache.k = k;
  cache.v = v;
  std::optional<torch::Tensor> mask;
  if (allowed.defined()) {
    TORCH_CHECK(allowed.dim() == 2 && allowed.size(0) == n && allowed.size(1) == k.size(2),
                "MultiHeadAttention: allowed must be [", n, ", ", k.size(2), "], got ",
                allowed.sizes());
    mask = allowed.to(x.device());
  }
  const double p = is_training() ? options.dropout() : 0.0;
  const auto context = at::scaled_dot_product_attention(parts[0], k, v, mask, p, false,
                                                        1.0 / std::sqrt(double(head_dim)));
  return out(context.transpose(1, 2).reshape({batch, n, options.dim()}));
}

MlpImpl::MlpImpl(const MlpOptions& options_) : options(options_) { reset(); }

void MlpImpl::reset() {
  fc1 = register_module("fc1", Linear(options.dim(), options.hidden()));
  fc2 = register_module("fc2", Linear(options.hidden(), options.dim()));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  return dropout(fc2(dropout(exact_gelu(fc1(x)))));
}

EncoderLayerImpl::EncoderLayerImpl(const EncoderLayerOptions& options_) : options(options_) {
  reset();
}

void EncoderLayerImpl::reset() {
  const auto norm_options = torch::nn::LayerNormOptions({options.dim()}).eps(options.eps());
  norm1 = register_module("norm1", torch::nn::LayerNorm(norm_options));
  attention = register_module(
      "attention", MultiHeadAttention(MultiHeadAttentionOptions(options.dim(), options.heads())
                                          .dropout(options.attention_dropout())));
  norm2 = register_module("norm2", torch::nn::LayerNorm(norm_options));
  mlp = register_module(
      "mlp", Mlp(MlpOptions(options.dim(), options.mlp_dim()).dropout(options.dropout())));
  dropout = register_module("dropout", torch::nn::Dropout(options.dropout()));
}

torch::Tensor EncoderLayerImpl::forward(const torch::Tensor& x,
                                        const torch::Tensor& key_padding_mask, int64_t queries) {
  // the rows that are computed: all, or the first `queries`
  const auto rows = queries < 0 ? x : x.narrow(1, 0, queries);
  if (options.norm_first()) {
    auto h = rows + dropout(attention(norm1(x), key_padding_mask, queries));
    return h + mlp(norm2(h));
  }
  auto h = norm1(rows + dropout(attention(x, key_padding_mask, queries)));
  return norm2(h + mlp(h));
}

torch::Tensor EncoderLayerImpl::forward_cached(const torch::Tensor& x, KvCache& cache,
                                               const torch::Tensor& allowed) {
  if (options.norm_first()) {
    auto h = x + dropout(attention->forward_cached(norm1(x), cache, allowed));
    return h + mlp(norm2(h));
  }
  auto h = norm1(x + dropout(attention->forward_cached(x, cache, allowed)));
  return norm2(h + mlp(h));
}

torch::nn::ModuleList make_encoder_layers(int64_t count, const EncoderLayerOptions& options) {
  torch::nn::ModuleList layers;
  for (int64_t i = 0; i < count; ++i) layers->push_back(EncoderLayer(options));
  return layers;
}

torch::Tensor run_encoder_layers(const torch::nn::ModuleList& layers, torch::Tensor x,
                                 const torch::Tensor& key_padding_mask) {
  for (const auto& layer : *layers) x = layer->as<EncoderLayer>()->forward(x, key_padding_mask);
  return x;
}

}  // namespace xmodal::models
