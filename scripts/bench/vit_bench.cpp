// ViT throughput of xmodal's ViT (scripts/bench/vit.sh runs it next to torchvision's).
// Prints one JSON line: {"impl": "xmodal", "forward_sps": ..., "train_sps": ..., ...}.
#include <torch/torch.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "xmodal/core/runtime.h"
#include "xmodal/models/vit.h"

namespace {

int arg(int argc, char** argv, const std::string& name, int fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atoi(argv[i + 1]);
  }
  return fallback;
}

// Samples per second of `step` over at least `seconds` (after `warmup` untimed calls).
template <class Step>
double throughput(Step step, int batch, int warmup, double seconds) {
  for (int i = 0; i < warmup; ++i) step();
  int iterations = 0;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (iterations < 3 || elapsed < seconds) {
    step();
    ++iterations;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  }
  return iterations * batch / elapsed;
}

}  // namespace

int main(int argc, char** argv) {
  const int image = arg(argc, argv, "image", 112), patch = arg(argc, argv, "patch", 16);
  const int hidden = arg(argc, argv, "hidden", 192), layers = arg(argc, argv, "layers", 6);
  const int heads = arg(argc, argv, "heads", 3), mlp = arg(argc, argv, "mlp", 768);
  const int batch = arg(argc, argv, "batch", 32), threads = arg(argc, argv, "threads", 0);
  const double seconds = arg(argc, argv, "seconds", 5);
  const int used_threads = xmodal::configure_threads(threads);
  torch::manual_seed(0);
  xmodal::models::ViT vit(xmodal::models::ViTOptions(image, patch, hidden, layers, heads, mlp));
  const auto images = torch::randn({batch, 3, image, image});

  vit->eval();
  const double forward = throughput(
      [&] {
        torch::InferenceMode guard;
        vit(images);
      },
      batch, 2, seconds);

  vit->train();
  const double train = throughput(
      [&] {
        vit->zero_grad();
        vit(images).mean().backward();
      },
      batch, 2, seconds);

  std::printf(
      "{\"impl\": \"xmodal\", \"threads\": %d, \"batch\": %d, \"forward_sps\": %.1f, "
      "\"train_sps\": %.1f}\n",
      used_threads, batch, forward, train);
  return 0;
}
