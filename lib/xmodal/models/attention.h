// Fused multi-head self-attention for float32 CPU tensors, forward and backward; and the same
// through LibTorch's scaled_dot_product_attention (MultiHeadAttention picks one by measurement:
// models/blocks.cpp).
//
// LibTorch 1.13 has no fused attention for training on the CPU (scaled_dot_product_attention
// came in 2.0), and without MKL its bmm runs a batch of tiny matrices as a loop of select()
// + BLAS calls (~770 tensor ops per attention product at batch 64, 4 heads). This kernel reads
// q, k and v in place from the qkv projection [B, L, 3D], runs one BLAS sgemm per (sample,
// head) and product, parallel over (sample, head), writes the context straight into [B, L, D],
// and masks padded keys inside the loop; softmax and its backward are ATen's vectorised
// kernels. Same arithmetic as the reference path (q k^T * scale, masked fill with the lowest
// float, softmax, probs v); gradients are checked against it in tests/models/attention_test.cpp.
#pragma once

#include <torch/torch.h>

namespace xmodal::models {

/// True when fused_attention() can run: a float32 CPU tensor and a BLAS sgemm in the process.
bool fused_attention_available(const torch::Tensor& qkv);

/// softmax(q k^T * scale, keys where key_padding_mask is true masked out) v for every head.
/// qkv: [B, L, 3D] (q, k, v blocks of D = heads x head_dim, as the qkv projection writes
/// them); key_padding_mask: [B, L] bool (true = padding) or undefined. Only the first
/// `queries` tokens attend (-1 = all): returns [B, queries, D]. Differentiable in qkv.
torch::Tensor fused_attention(const torch::Tensor& qkv, const torch::Tensor& key_padding_mask,
                              int64_t heads, double scale, int64_t queries = -1);

/// The same through LibTorch's scaled_dot_product_attention (any device and type): q, k and v
/// as views of qkv [B, L, 3D], the padded keys as a boolean mask. Returns [B, queries, D].
torch::Tensor sdpa_attention(const torch::Tensor& qkv, const torch::Tensor& key_padding_mask,
                             int64_t heads, double scale, int64_t queries = -1);

/// False when a row of key_padding_mask hides every key: SDPA gives NaN there, where the
/// composition (masked with the lowest value) attends uniformly.
bool sdpa_attention_applies(const torch::Tensor& key_padding_mask);

}  // namespace xmodal::models
