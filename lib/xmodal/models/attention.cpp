#include "xmodal/models/attention.h"

#include <ATen/Parallel.h>

#include <limits>
#include <optional>

#include "xmodal/core/gemm.h"

namespace xmodal::models {

namespace {

// The BLAS's own sgemm_ (column-major; core/gemm.h): these small single-threaded products run
// fastest on OpenBLAS's kernels (scripts/bench/gemm.sh), whatever the thread count.
SgemmFn sgemm() { return blas_sgemm(); }

// Row-major C[m x n] = alpha * op(A) op(B) + beta * C, with row strides lda, ldb, ldc.
// Column-major BLAS sees each row-major matrix transposed, so it computes C^T = op(B)^T op(A)^T.
void gemm(bool trans_a, bool trans_b, int m, int n, int k, float alpha, const float* a, int lda,
          const float* b, int ldb, float beta, float* c, int ldc) {
  const char ta = trans_a ? 'T' : 'N', tb = trans_b ? 'T' : 'N';
  sgemm()(&tb, &ta, &n, &m, &k, &alpha, b, &ldb, a, &lda, &beta, c, &ldc);
}

struct Shape {
  int64_t batch, length, dim, heads, head_dim;
  int64_t queries;  ///< the first `queries` tokens attend (all keys are attended to)
};

Shape shape_of(const torch::Tensor& qkv, int64_t heads, int64_t queries) {
  const int64_t dim = qkv.size(2) / 3;
  return {qkv.size(0), qkv.size(1), dim, heads, dim / heads, queries};
}

// Runs fn(b, h) for every (sample, head) pair on LibTorch's intra-op threads.
template <class Fn>
void for_each_head(const Shape& s, Fn fn) {
  at::parallel_for(0, s.batch * s.heads, 1, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) fn(i / s.heads, i % s.heads);
  });
}

class FusedAttention : public torch::autograd::Function<FusedAttention> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& qkv_in,
                               const torch::Tensor& key_padding_mask, int64_t heads, double scale,
                               int64_t queries) {
    const torch::Tensor qkv = qkv_in.contiguous();
    const Shape s = shape_of(qkv, heads, queries);
    const int L = static_cast<int>(s.length), Dh = static_cast<int>(s.head_dim);
    const int Q = static_cast<int>(s.queries);
    const int ld_qkv = static_cast<int>(3 * s.dim), ld_out = static_cast<int>(s.dim);
    // scores, then probs: [B, H, Q, L]
    auto scores = torch::empty({s.batch, s.heads, s.queries, s.length}, qkv.options());
    const float* base = qkv.data_ptr<float>();
    float* score_base = scores.data_ptr<float>();
    // (an undefined tensor cannot be an autograd input: no mask comes as an empty one)
    torch::Tensor mask;
    if (key_padding_mask.numel() > 0) mask = key_padding_mask.to(torch::kBool).contiguous();
    const bool* mask_base = mask.defined() ? mask.data_ptr<bool>() : nullptr;
    const float lowest = std::numeric_limits<float>::lowest();
    for_each_head(s, [&](int64_t b, int64_t h) {
      const float* q = base + b * s.length * 3 * s.dim + h * s.head_dim;
      const float* k = q + s.dim;
      float* out = score_base + (b * s.heads + h) * s.queries * s.length;
      gemm(false, true, Q, L, Dh, static_cast<float>(scale), q, ld_qkv, k, ld_qkv, 0.0f, out, L);
      if (mask_base == nullptr) return;
      const bool* padded = mask_base + b * s.length;
      for (int64_t j = 0; j < s.length; ++j) {
        if (!padded[j]) continue;
        for (int64_t i = 0; i < s.queries; ++i) out[i * s.length + j] = lowest;
      }
    });
    const torch::Tensor probs = at::_softmax(scores, -1, false);
    // context: [B, Q, D], head h in columns h * Dh .. (h + 1) * Dh
    auto context = torch::empty({s.batch, s.queries, s.dim}, qkv.options());
    const float* prob_base = probs.data_ptr<float>();
    float* context_base = context.data_ptr<float>();
    for_each_head(s, [&](int64_t b, int64_t h) {
      const float* p = prob_base + (b * s.heads + h) * s.queries * s.length;
      const float* v = base + b * s.length * 3 * s.dim + 2 * s.dim + h * s.head_dim;
      float* out = context_base + b * s.queries * s.dim + h * s.head_dim;
      gemm(false, false, Q, Dh, L, 1.0f, p, L, v, ld_qkv, 0.0f, out, ld_out);
    });
    ctx->save_for_backward({qkv, probs});
    ctx->saved_data["heads"] = heads;
    ctx->saved_data["scale"] = scale;
    ctx->saved_data["queries"] = queries;
    return context;
  }

  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grads) {
    const auto saved = ctx->get_saved_variables();
    const torch::Tensor& qkv = saved[0];
    const torch::Tensor& probs = saved[1];
    const int64_t heads = ctx->saved_data["heads"].toInt();
    const auto scale = static_cast<float>(ctx->saved_data["scale"].toDouble());
    const torch::Tensor grad_context = grads[0].contiguous();
    const Shape s = shape_of(qkv, heads, ctx->saved_data["queries"].toInt());
    const int L = static_cast<int>(s.length), Dh = static_cast<int>(s.head_dim);
    const int Q = static_cast<int>(s.queries);
    const int ld_qkv = static_cast<int>(3 * s.dim), ld_out = static_cast<int>(s.dim);
    const float* base = qkv.data_ptr<float>();
    const float* prob_base = probs.data_ptr<float>();
    const float* grad_base = grad_context.data_ptr<float>();
    // grad_qkv: [B, L, 3D]; every element is written below (dq, dk, dv of every head), except
    // dq of the tokens past the queries, which is zero
    auto grad_qkv = torch::empty_like(qkv);
    if (s.queries < s.length) {
      grad_qkv.narrow(1, s.queries, s.length - s.queries).narrow(2, 0, s.dim).zero_();
    }
    float* grad_qkv_base = grad_qkv.data_ptr<float>();
    auto grad_probs = torch::empty_like(probs);
    float* grad_probs_base = grad_probs.data_ptr<float>();
    for_each_head(s, [&](int64_t b, int64_t h) {
      const int64_t row = b * s.length * 3 * s.dim + h * s.head_dim;
      const float* p = prob_base + (b * s.heads + h) * s.queries * s.length;
      const float* d_out = grad_base + b * s.queries * s.dim + h * s.head_dim;
      const float* v = base + row + 2 * s.dim;
      // dv = p^T d_out; dp = d_out v^T
      gemm(true, false, L, Dh, Q, 1.0f, p, L, d_out, ld_out, 0.0f, grad_qkv_base + row + 2 * s.dim,
           ld_qkv);
      gemm(false, true, Q, L, Dh, 1.0f, d_out, ld_out, v, ld_qkv, 0.0f,
           grad_probs_base + (b * s.heads + h) * s.queries * s.length, L);
    });
    // d_scores = p * (dp - sum(dp * p)); masked keys have p = 0, so they get no gradient
    const torch::Tensor grad_scores =
        at::_softmax_backward_data(grad_probs, probs, -1, probs.scalar_type());
    const float* grad_score_base = grad_scores.data_ptr<float>();
    for_each_head(s, [&](int64_t b, int64_t h) {
      const int64_t row = b * s.length * 3 * s.dim + h * s.head_dim;
      const float* ds = grad_score_base + (b * s.heads + h) * s.queries * s.length;
      const float* q = base + row;
      const float* k = base + row + s.dim;
      // dq = ds k * scale; dk = ds^T q * scale
      gemm(false, false, Q, Dh, L, scale, ds, L, k, ld_qkv, 0.0f, grad_qkv_base + row, ld_qkv);
      gemm(true, false, L, Dh, Q, scale, ds, L, q, ld_qkv, 0.0f, grad_qkv_base + row + s.dim,
           ld_qkv);
    });
    return {grad_qkv, torch::Tensor(), torch::Tensor(), torch::Tensor(), torch::Tensor()};
  }
};

}  // namespace

bool fused_attention_available(const torch::Tensor& qkv) {
  return sgemm() != nullptr && qkv.device().is_cpu() && qkv.scalar_type() == torch::kFloat32 &&
         qkv.dim() == 3;
}

torch::Tensor fused_attention(const torch::Tensor& qkv, const torch::Tensor& key_padding_mask,
                              int64_t heads, double scale, int64_t queries) {
  TORCH_CHECK(fused_attention_available(qkv),
              "fused_attention: needs a float32 CPU tensor [B, L, 3D] and a BLAS sgemm, got ",
              qkv.scalar_type(), " ", qkv.sizes(), " on ", qkv.device());
  TORCH_CHECK(heads > 0 && qkv.size(2) % (3 * heads) == 0, "fused_attention: qkv width (",
              qkv.size(2), ") is not 3 x heads (", heads, ") x head_dim");
  TORCH_CHECK(!key_padding_mask.defined() ||
                  key_padding_mask.sizes() == torch::IntArrayRef({qkv.size(0), qkv.size(1)}),
              "fused_attention: key_padding_mask must be [", qkv.size(0), ", ", qkv.size(1),
              "], got ", key_padding_mask.sizes());
  if (queries < 0) queries = qkv.size(1);
  TORCH_CHECK(queries >= 1 && queries <= qkv.size(1), "fused_attention: queries (", queries,
              ") must be 1..", qkv.size(1));
  return FusedAttention::apply(
      qkv, key_padding_mask.defined() ? key_padding_mask : torch::empty({0}, torch::kBool), heads,
      scale, queries);
}

torch::Tensor sdpa_attention(const torch::Tensor& qkv, const torch::Tensor& key_padding_mask,
                             int64_t heads, double scale, int64_t queries) {
  const int64_t batch = qkv.size(0), length = qkv.size(1), dim = qkv.size(2) / 3;
  if (queries < 0) queries = length;
  // [B, L, 3D] -> [3, B, H, L, Dh]
  const auto parts = qkv.view({batch, length, 3, heads, dim / heads}).permute({2, 0, 3, 1, 4});
  std::optional<torch::Tensor> mask;  // true = takes part
  if (key_padding_mask.defined()) {
    mask = key_padding_mask.logical_not().view({batch, 1, 1, length});
  }
  const auto context = at::scaled_dot_product_attention(parts[0].narrow(2, 0, queries), parts[1],
                                                        parts[2], mask, 0.0, false, scale);
  return context.transpose(1, 2).reshape({batch, queries, dim});  // [B, H, Q, Dh] -> [B, Q, D]
}

bool sdpa_attention_applies(const torch::Tensor& key_padding_mask) {
  return !key_padding_mask.defined() || !key_padding_mask.all(1).any().item<bool>();
}

}  // namespace xmodal::models
