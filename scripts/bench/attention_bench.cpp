// Attention at the model's shapes, forward + backward: xmodal's fused CPU kernel
// (models/attention.h), LibTorch's scaled_dot_product_attention, and the plain ATen
// composition (matmul, masked softmax, matmul). Prints one JSON line per shape and path:
//   {"shape": "fusion", "path": "sdpa", "batch": 64, "tokens": 54, "us_per_call": ...}
// scripts/bench/attention.sh runs it; each path alternates with the others, best of rounds.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "xmodal/core/runtime.h"
#include "xmodal/models/attention.h"

namespace {

int int_arg(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

using Attention = std::function<torch::Tensor(const torch::Tensor& qkv, const torch::Tensor& pad,
                                              int64_t heads, int64_t queries)>;

// q, k, v as [B, H, L, Dh] views of the projection [B, L, 3D].
std::vector<torch::Tensor> split_heads(const torch::Tensor& qkv, int64_t heads) {
  const int64_t b = qkv.size(0), l = qkv.size(1), d = qkv.size(2) / 3;
  auto parts = qkv.view({b, l, 3, heads, d / heads}).permute({2, 0, 3, 1, 4});
  return {parts[0], parts[1], parts[2]};
}

torch::Tensor merge_heads(const torch::Tensor& context) {  // [B, H, Q, Dh] -> [B, Q, D]
  return context.transpose(1, 2).reshape({context.size(0), context.size(2), -1});
}

torch::Tensor sdpa(const torch::Tensor& qkv, const torch::Tensor& pad, int64_t heads,
                   int64_t queries) {
  auto hs = split_heads(qkv, heads);
  auto q = hs[0].narrow(2, 0, queries);
  std::optional<torch::Tensor> mask;  // true = takes part
  if (pad.defined()) mask = pad.logical_not().view({pad.size(0), 1, 1, pad.size(1)});
  return merge_heads(at::scaled_dot_product_attention(q, hs[1], hs[2], mask));
}

torch::Tensor composed(const torch::Tensor& qkv, const torch::Tensor& pad, int64_t heads,
                       int64_t queries) {
  auto hs = split_heads(qkv, heads);
  auto q = hs[0].narrow(2, 0, queries);
  auto scores = torch::matmul(q, hs[1].transpose(-2, -1)) / std::sqrt(double(q.size(-1)));
  if (pad.defined()) {
    const double lowest = scores.scalar_type() == torch::kBFloat16
                              ? static_cast<double>(std::numeric_limits<c10::BFloat16>::lowest())
                              : std::numeric_limits<float>::lowest();
    scores = scores.masked_fill(pad.view({pad.size(0), 1, 1, pad.size(1)}), lowest);
  }
  return merge_heads(torch::matmul(torch::softmax(scores, -1), hs[2]));
}

torch::Tensor fused(const torch::Tensor& qkv, const torch::Tensor& pad, int64_t heads,
                    int64_t queries) {
  const double scale = 1.0 / std::sqrt(double(qkv.size(2) / 3 / heads));
  return xmodal::models::fused_attention(qkv, pad, heads, scale, queries);
}

// Microseconds per call of `step`, the best of `rounds` timed runs of at least `seconds`.
double time_us(const std::function<void()>& step, double seconds) {
  for (int i = 0; i < 3; ++i) step();
  int calls = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (calls < 5 || elapsed < seconds) {
    step();
    ++calls;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return elapsed * 1e6 / calls;
}

struct Shape {
  const char* name;
  int64_t tokens, padded, queries;  // padded: keys masked out at the end of each row
};

}  // namespace

int main(int argc, char** argv) {
  const int batch = int_arg(argc, argv, "batch", 64), dim = int_arg(argc, argv, "dim", 128);
  const int heads = int_arg(argc, argv, "heads", 4), rounds = int_arg(argc, argv, "rounds", 3);
  const double seconds = int_arg(argc, argv, "ms", 1500) / 1000.0;
  const bool train = int_arg(argc, argv, "backward", 1) != 0;
  // --bf16 1: q, k, v in bfloat16, as under train.precision bf16 (the fused kernel is float32 only)
  const bool bf16 = int_arg(argc, argv, "bf16", 0) != 0;
  const int threads = xmodal::configure_threads(int_arg(argc, argv, "threads", 0));
  torch::manual_seed(0);
  // The quickstart's attention calls: the image encoder (1 + 36 tokens, no padding), the fusion
  // over [CLS] + 16 text + 37 image tokens with ~10 padded text tokens, and the fusion's last
  // layer, where only [CLS] queries.
  const std::vector<Shape> shapes = {
      {"vision", 37, 0, 37}, {"fusion", 54, 10, 54}, {"fusion_cls", 54, 10, 1}};
  std::vector<std::pair<std::string, Attention>> paths = {{"sdpa", sdpa}, {"composed", composed}};
  if (!bf16) paths.insert(paths.begin(), {"fused", fused});
  for (const auto& shape : shapes) {
    auto qkv = torch::randn({batch, shape.tokens, 3 * dim})
                   .to(bf16 ? torch::kBFloat16 : torch::kFloat32)
                   .requires_grad_(train);
    torch::Tensor pad;
    if (shape.padded > 0) {
      pad = torch::zeros({batch, shape.tokens}, torch::kBool);
      pad.narrow(1, 1 + 16 - shape.padded, shape.padded).fill_(true);
    }
    // the paths agree before they are timed
    auto reference = composed(qkv, pad, heads, shape.queries);
    for (const auto& [name, path] : paths) {
      const double diff =
          (path(qkv, pad, heads, shape.queries) - reference).abs().max().item<double>();
      if (diff > (bf16 ? 5e-2 : 1e-4)) {
        std::fprintf(stderr, "attention_bench: %s differs from the composition by %g (%s)\n",
                     name.c_str(), diff, shape.name);
        return 1;
      }
    }
    std::vector<double> best(paths.size(), std::numeric_limits<double>::infinity());
    for (int r = 0; r < rounds; ++r) {
      for (size_t p = 0; p < paths.size(); ++p) {
        const auto& path = paths[p].second;
        best[p] = std::min(best[p], time_us(
                                        [&] {
                                          if (train) {
                                            qkv.mutable_grad() = torch::Tensor();
                                            path(qkv, pad, heads, shape.queries).sum().backward();
                                          } else {
                                            torch::NoGradGuard no_grad;
                                            path(qkv, pad, heads, shape.queries);
                                          }
                                        },
                                        seconds));
      }
    }
    for (size_t p = 0; p < paths.size(); ++p) {
      std::printf(
          "{\"shape\": \"%s\", \"path\": \"%s\", \"dtype\": \"%s\", \"backward\": %s, \"batch\": "
          "%d, \"tokens\": %lld, "
          "\"queries\": %lld, \"dim\": %d, \"heads\": %d, \"threads\": %d, \"us_per_call\": "
          "%.1f}\n",
          shape.name, paths[p].first.c_str(), bf16 ? "bf16" : "fp32", train ? "true" : "false",
          batch, static_cast<long long>(shape.tokens), static_cast<long long>(shape.queries), dim,
          heads, threads, best[p]);
    }
  }
  return 0;
}
