#include "xmodal/models/attention.h"

#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <cmath>

#include "../support/fixtures.h"
#include "xmodal/models/blocks.h"

namespace xmodal::models {
namespace {

using xmodal::testing::max_abs_diff;

struct Result {
  torch::Tensor out, grad_x, grad_qkv_weight;
};

// One attention forward + backward with the fused kernel on or off, same weights and input.
Result run(MultiHeadAttention& attention, const torch::Tensor& x_in, const torch::Tensor& mask,
           bool fused) {
  attention->options.fused(fused);
  attention->zero_grad();
  auto x = x_in.detach().clone().requires_grad_(true);
  auto out = attention(x, mask);
  // a loss that weighs every output differently, so every gradient path matters
  (out * torch::linspace(-1, 1, out.numel()).view(out.sizes())).sum().backward();
  return {out.detach(), x.grad(), attention->qkv->weight.grad().clone()};
}

TEST(FusedAttention, MatchesTheReferenceForwardAndBackward) {
  torch::manual_seed(3);
  struct Case {
    int64_t batch, length, dim, heads;
    bool masked;
  };
  for (const Case& c : {Case{4, 55, 128, 4, true}, Case{3, 7, 24, 3, false}, Case{2, 1, 8, 1, true},
                        Case{5, 17, 64, 8, true}}) {
    MultiHeadAttention attention(MultiHeadAttentionOptions(c.dim, c.heads));
    const auto x = torch::randn({c.batch, c.length, c.dim});
    torch::Tensor mask;
    if (c.masked) {  // sample b has its last b keys padded (never all of them)
      mask = torch::arange(c.length).unsqueeze(0).ge(
          (c.length - torch::arange(c.batch)).clamp_min(1).unsqueeze(1));
    }
    const Result fused = run(attention, x, mask, true);
    const Result reference = run(attention, x, mask, false);
    SCOPED_TRACE(::testing::Message()
                 << "B " << c.batch << " L " << c.length << " D " << c.dim << " H " << c.heads);
    EXPECT_LE(max_abs_diff(fused.out, reference.out), 1e-5);
    EXPECT_LE(max_abs_diff(fused.grad_x, reference.grad_x), 1e-5);
    EXPECT_LE(max_abs_diff(fused.grad_qkv_weight, reference.grad_qkv_weight), 1e-4);
  }
}

TEST(FusedAttention, FirstQueriesOnlyEqualTheFullRowsWithTheSameGradients) {
  torch::manual_seed(8);
  for (const bool fused : {true, false}) {
    for (const bool norm_first : {true, false}) {
      EncoderLayer layer(EncoderLayerOptions(32, 4, 64).norm_first(norm_first));
      layer->attention->options.fused(fused);
      const auto x = torch::randn({3, 9, 32});
      const auto mask = torch::arange(9).unsqueeze(0).ge(torch::tensor({9, 6, 4}).unsqueeze(1));
      auto full_x = x.clone().requires_grad_(true);
      layer->zero_grad();
      const auto full = layer(full_x, mask);
      full.narrow(1, 0, 2).pow(2).sum().backward();
      const auto full_grad = layer->attention->qkv->weight.grad().clone();
      auto part_x = x.clone().requires_grad_(true);
      layer->zero_grad();
      const auto part = layer->forward(part_x, mask, 2);
      ASSERT_EQ(part.sizes(), torch::IntArrayRef({3, 2, 32}));
      part.pow(2).sum().backward();
      SCOPED_TRACE(::testing::Message() << "fused " << fused << " norm_first " << norm_first);
      EXPECT_LE(max_abs_diff(part, full.narrow(1, 0, 2)), 1e-5);
      EXPECT_LE(max_abs_diff(part_x.grad(), full_x.grad()), 1e-5);
      EXPECT_LE(max_abs_diff(layer->attention->qkv->weight.grad(), full_grad), 1e-4);
    }
  }
}

TEST(FusedAttention, PaddedKeysGetNoAttentionAndNoGradient) {
  torch::manual_seed(4);
  const auto qkv = torch::randn({2, 6, 3 * 8}).requires_grad_(true);
  auto mask = torch::zeros({2, 6}, torch::kBool);
  mask[0][4] = true;
  mask[0][5] = true;
  auto out = fused_attention(qkv, mask, 2, 0.5);
  out.sum().backward();
  // the keys and values of padded positions do not reach any output
  const auto kv_grad = qkv.grad()[0].narrow(0, 4, 2).narrow(1, 8, 16);
  EXPECT_EQ(kv_grad.abs().max().item<float>(), 0.0f);
  // changing a padded value changes nothing
  auto changed = qkv.detach().clone();
  changed[0][5].narrow(0, 16, 8).fill_(100.0f);
  EXPECT_EQ(max_abs_diff(fused_attention(changed, mask, 2, 0.5), out.detach()), 0.0);
}

TEST(FusedAttention, SameBitsOnOneAndTwoThreads) {
  torch::manual_seed(5);
  const auto qkv = torch::randn({8, 20, 3 * 32});
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const auto one = fused_attention(qkv, {}, 4, 0.25);
  at::set_num_threads(2);
  const auto two = fused_attention(qkv, {}, 4, 0.25);
  at::set_num_threads(threads);
  EXPECT_TRUE(torch::equal(one, two));
}

TEST(FusedAttention, OnlyWhereItApplies) {
  EXPECT_TRUE(fused_attention_available(torch::zeros({1, 2, 6})));
  EXPECT_FALSE(fused_attention_available(torch::zeros({1, 2, 6}, torch::kFloat64)));
  EXPECT_THROW(fused_attention(torch::zeros({1, 2, 7}), {}, 2, 1.0), c10::Error);
  EXPECT_THROW(fused_attention(torch::zeros({1, 2, 6}), torch::zeros({1, 3}, torch::kBool), 1, 1.0),
               c10::Error);
  // kept attention maps (xmodal explain) and attention dropout take the reference path
  MultiHeadAttention attention(MultiHeadAttentionOptions(8, 2).dropout(0.5));
  attention->train();
  torch::manual_seed(6);
  const auto x = torch::randn({2, 3, 8});
  torch::manual_seed(7);
  const auto a = attention(x);
  attention->options.fused(false);
  torch::manual_seed(7);
  EXPECT_TRUE(torch::equal(a, attention(x)));
}

// Without gradients MultiHeadAttention takes LibTorch's scaled_dot_product_attention (faster
// there, scripts/bench/attention.sh): the same outputs as the composition, first queries only
// included; a row whose keys are all padded keeps the composition (SDPA would give NaN).
TEST(SdpaAttention, InferenceEqualsTheReferenceAndAvoidsFullyPaddedRows) {
  torch::manual_seed(8);
  MultiHeadAttention attention(MultiHeadAttentionOptions(64, 4));
  attention->eval();
  const auto x = torch::randn({3, 11, 64});
  auto mask = torch::zeros({3, 11}, torch::kBool);
  mask[1].narrow(0, 6, 5).fill_(true);
  torch::NoGradGuard no_grad;
  for (const int64_t queries : {int64_t{-1}, int64_t{1}, int64_t{4}}) {
    attention->options.fused(true);
    const auto sdpa = attention(x, mask, queries);
    attention->options.fused(false);
    const auto reference = attention(x, mask, queries);
    EXPECT_LE(max_abs_diff(sdpa, reference), 1e-5) << queries;
  }
  const auto qkv = attention->qkv(x);
  const auto direct = sdpa_attention(qkv, mask, 4, 1.0 / std::sqrt(16.0));
  attention->options.fused(false);
  EXPECT_LE(max_abs_diff(attention->out(direct), attention(x, mask)), 1e-5);
  EXPECT_TRUE(sdpa_attention_applies(mask));
  EXPECT_TRUE(sdpa_attention_applies({}));
  mask[2].fill_(true);
  EXPECT_FALSE(sdpa_attention_applies(mask));
  attention->options.fused(true);
  const auto all_padded = attention(x, mask);
  EXPECT_TRUE(torch::isfinite(all_padded).all().item<bool>());
  attention->options.fused(false);
  EXPECT_TRUE(torch::equal(all_padded, attention(x, mask)));
}

}  // namespace
}  // namespace xmodal::models
