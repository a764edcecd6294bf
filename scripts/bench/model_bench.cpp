// The whole xmodal model (a config's fusion model with its heads and losses) on synthetic
// batches: training steps, inference throughput and latency, the matmul ceiling. Its PyTorch
// (Python) peer is model_bench.py; scripts/bench/run.sh runs both and prints the table.
//   xmodal_bench_model --config configs/quickstart.yaml --mode arch|matmul|train|infer
//                      [--batch 64] [--seconds 10] [--threads 0] [--intra-op -1]
//                      [--profile TRACE.json] [--reference 1]
//   xmodal_bench_model --checkpoint CKPT [--quantize int8] --mode infer [--batch 32]
//                      (a trained model as `xmodal eval` loads it: scripts/bench/compress.sh)
// Prints one JSON line. Sizes the data would fix (vocabulary, answers, auxiliary categories)
// are flags with the scenes set's values.
#include <sys/resource.h>
#include <torch/torch.h>
#include <functional>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/runtime.h"
#include "xmodal/models/blocks.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/losses.h"
#include "xmodal/models/precision.h"
#include "xmodal/tasks/caption.h"
#include "xmodal/tasks/task.h"
#include "xmodal/train/optimizer.h"

namespace {

using Clock = std::chrono::steady_clock;

std::string arg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

int int_arg(int argc, char** argv, const std::string& name, int fallback) {
  return std::stoi(arg(argc, argv, name, std::to_string(fallback)));
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

double median(std::vector<double> values) {
  if (values.empty()) return 0.0;
  std::sort(values.begin(), values.end());
  return values[values.size() / 2];
}

long peak_rss_kb() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return usage.ru_maxrss;
}

// A batch like the scenes loader's: images, questions padded to the text length (lengths
// 4..12), soft VQA targets, per-image category counts and the dense per-patch targets.
struct Batch {
  torch::Tensor images, ids, mask, types, targets, aux_counts, aux_dense;
};

Batch make_batch(int64_t batch, const xmodal::config::Config& c, int64_t vocab, int64_t classes,
                 int64_t aux) {
  const int64_t image = c.data.image_size, length = c.data.max_text_len;
  const int64_t grid = image / c.model.vision.patch_size;
  Batch b;
  b.images = torch::randn({batch, 3, image, image});
  b.ids = torch::randint(1, vocab, {batch, length}, torch::kLong);
  auto lengths = torch::arange(batch, torch::kLong).remainder(9).add(4).unsqueeze(1);
  b.mask = torch::arange(length, torch::kLong).unsqueeze(0).lt(lengths).to(torch::kLong);
  b.ids = b.ids * b.mask;
  b.types = torch::zeros_like(b.ids);
  b.targets = torch::rand({batch, classes}).lt(0.05).to(torch::kFloat);
  b.aux_counts = torch::randint(0, 4, {batch, aux}, torch::kLong);
  b.aux_dense = torch::rand({batch, grid * grid, aux}).lt(0.1).to(torch::kFloat);
  return b;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = arg(argc, argv, "mode", "train");
  const std::string config_path = arg(argc, argv, "config", "configs/quickstart.yaml");
  const int batch = int_arg(argc, argv, "batch", 64);
  const double seconds = std::stod(arg(argc, argv, "seconds", "10"));
  int vocab = int_arg(argc, argv, "vocab", 37), classes = int_arg(argc, argv, "classes", 19);
  int aux = int_arg(argc, argv, "aux", 10);
  const int threads = xmodal::configure_threads(int_arg(argc, argv, "threads", 0),
                                                int_arg(argc, argv, "intra-op", -1));
  const std::string checkpoint = arg(argc, argv, "checkpoint", "");
  const std::string quantize = arg(argc, argv, "quantize", "none");
  xmodal::checkpoint::LoadedModel loaded;
  if (!checkpoint.empty()) {
    loaded = xmodal::checkpoint::load_trained_model(checkpoint);
    xmodal::checkpoint::quantize_model(
        loaded,
        quantize == "int8" ? xmodal::config::Quantize::int8 : xmodal::config::Quantize::none,
        c10::Device(c10::kCPU));
    vocab = static_cast<int>(loaded.artifacts.tokenizer->vocab_size());
    classes = static_cast<int>(loaded.artifacts.class_names.size());
    aux = static_cast<int>(loaded.artifacts.aux_class_names.size());
  }
  auto config = checkpoint.empty()
                    ? xmodal::config::load_config(config_path, {"model.vision.init_from="})
                    : loaded.config;
  torch::manual_seed(0);

  if (mode == "arch") {  // the sizes the Python peer builds its model from
    const auto& m = config.model;
    std::printf(
        "{\"image\": %d, \"patch\": %d, \"stem\": \"%s\", \"stem_width\": %d, \"vision_hidden\": "
        "%d, \"vision_layers\": %d, \"vision_heads\": %d, \"vision_mlp\": %d, \"text_len\": %d, "
        "\"text_hidden\": %d, \"text_layers\": %d, \"text_heads\": %d, \"text_mlp\": %d, "
        "\"fusion_hidden\": %d, \"fusion_layers\": %d, \"fusion_heads\": %d, \"fusion_mlp\": %d, "
        "\"head_hidden\": %d, \"max_count\": %d, \"vocab\": %d, \"classes\": %d, \"aux\": %d, "
        "\"aux_counting\": %g, \"aux_dense\": %g}\n",
        config.data.image_size, m.vision.patch_size,
        m.vision.stem == xmodal::config::Stem::conv ? "conv" : "patch", m.vision.stem_width,
        m.vision.hidden, m.vision.layers, m.vision.heads, m.vision.mlp_dim,
        config.data.max_text_len, m.text.hidden, m.text.layers, m.text.heads, m.text.intermediate,
        m.fusion.hidden, m.fusion.layers, m.fusion.heads, m.fusion.mlp_dim, m.head.hidden,
        m.head.max_count, vocab, classes, aux, config.train.aux.counting, config.train.aux.dense);
    return 0;
  }
  if (mode == "matmul") {
    const int n = int_arg(argc, argv, "n", 2048);
    const double gflops = xmodal::measure_matmul_gflops(n, seconds);
    const double bf16 = xmodal::measure_bf16_matmul_gflops(n, seconds);
    std::printf(
        "{\"impl\": \"xmodal\", \"mode\": \"matmul\", \"threads\": %d, \"n\": %d, "
        "\"gflops\": %.1f, \"bf16_gflops\": %.1f}\n",
        threads, n, gflops, bf16);
    return 0;
  }

  auto model =
      checkpoint.empty() ? xmodal::tasks::build_model(config, {vocab, classes, aux}) : loaded.model;
  const std::string impl =
      loaded.quantization == xmodal::config::Quantize::int8 ? "xmodal-int8" : "xmodal";
  // --reference 1: xmodal's two compute shortcuts off (the fused attention kernel and the
  // [CLS]-row-only last fusion layer), i.e. the same ATen ops as the PyTorch peer.
  const bool reference = int_arg(argc, argv, "reference", 0) != 0;
  // --precision bf16: the forward pass under autocast, as train.precision bf16 runs it
  const std::string precision_name = arg(argc, argv, "precision", "fp32");
  if (precision_name != "fp32" && precision_name != "bf16") {
    std::fprintf(stderr, "xmodal_bench_model: --precision must be fp32 or bf16\n");
    return 2;
  }
  const auto precision =
      precision_name == "bf16" ? xmodal::config::Precision::bf16 : xmodal::config::Precision::fp32;
  const c10::Device cpu(c10::kCPU);
  const std::string label = std::string(reference ? "xmodal-reference" : impl) +
                            (precision_name == "bf16" ? "-bf16" : "");
  if (reference) {
    model->pooled_only_fusion = false;
    for (auto& module : model->modules()) {
      if (auto* attention = module->as<xmodal::models::MultiHeadAttentionImpl>()) {
        attention->options.fused(false);
      }
    }
  }
  if (int_arg(argc, argv, "channels-last", 0) != 0) {  // experiment: the stem in NHWC
    torch::NoGradGuard no_grad;
    for (auto& p : model->parameters()) {
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
    }
  }
  if (mode == "train") {
    model->train();
    const auto& tc = config.train;
    xmodal::train::AdamW optimizer(
        xmodal::train::make_param_groups(*model, tc.weight_decay),
        xmodal::train::AdamWOptions{tc.adam_beta1, tc.adam_beta2, tc.adam_eps});
    const auto params = optimizer.parameters();
    const Batch b = make_batch(batch, config, vocab, classes, aux);
    std::vector<double> forward_ms, backward_ms, update_ms;  // per step, for the breakdown
    auto step = [&] {
      const auto t0 = Clock::now();
      xmodal::models::AutocastGuard autocast(precision, cpu);
      const auto out = model->forward(b.images, b.ids, b.mask, b.types, {});
      autocast.reset();
      auto loss = xmodal::models::vqa_loss(out.at("logits"), b.targets).total;
      if (out.aux_presence.defined()) {
        loss = loss +
               xmodal::models::counting_loss(out.aux_presence, out.aux_counts, b.aux_counts, {}, {})
                       .total *
                   tc.aux.counting;
      }
      if (out.aux_dense.defined()) {
        loss = loss + xmodal::models::dense_loss(out.aux_dense, b.aux_dense) * tc.aux.dense;
      }
      const double value = loss.item<double>();  // the trainer reads the loss every step too
      const auto t1 = Clock::now();
      (loss / static_cast<double>(batch)).backward();
      const auto t2 = Clock::now();
      xmodal::train::clip_grad_norm(params, tc.grad_clip);
      optimizer.step(1e-4);
      optimizer.zero_grad();
      forward_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
      backward_ms.push_back(std::chrono::duration<double, std::milli>(t2 - t1).count());
      update_ms.push_back(seconds_since(t2) * 1e3);
      return value;
    };
    for (int i = 0; i < 3; ++i) step();
    const std::string profile = arg(argc, argv, "profile", "");
    if (!profile.empty()) {  // a Chrome trace of 5 steps; profile_summary.py summarises it
      torch::autograd::profiler::RecordProfile record(profile);
      for (int i = 0; i < 5; ++i) step();
    }
    int steps = 0;
    forward_ms.clear(), backward_ms.clear(), update_ms.clear();
    const auto start = Clock::now();
    while (steps < 5 || seconds_since(start) < seconds) {
      step();
      ++steps;
    }
    const double elapsed = seconds_since(start);
    std::printf(
        "{\"impl\": \"%s\", \"mode\": \"train\", \"threads\": %d, \"batch\": %d, \"steps\": "
        "%d, \"train_sps\": %.1f, \"forward_ms\": %.1f, \"backward_ms\": %.1f, \"update_ms\": "
        "%.1f, \"peak_rss_mb\": %.1f}\n",
        label.c_str(), threads, batch, steps, steps * batch / elapsed, median(forward_ms),
        median(backward_ms), median(update_ms), peak_rss_kb() / 1024.0);
    return 0;
  }
  if (mode == "infer") {
    model->eval();
    if (precision == xmodal::config::Precision::bf16) model->compute_dtype = torch::kBFloat16;
    const Batch b = make_batch(batch, config, vocab, classes, aux);
    const Batch one = make_batch(1, config, vocab, classes, aux);
    auto forward = [&](const Batch& x) {
      torch::InferenceMode guard;  // bf16: the model's compute_dtype, as infer::Session sets it
      const auto out = model->forward(x.images, x.ids, x.mask, x.types, {});
      const auto logits = out.get("logits");
      return logits.defined() ? logits.sigmoid() : out.pooled;
    };
    for (int i = 0; i < 3; ++i) forward(b);
    const std::string profile = arg(argc, argv, "profile", "");
    if (!profile.empty()) {  // a Chrome trace of 10 batches; profile_summary.py summarises it
      torch::autograd::profiler::RecordProfile record(profile);
      for (int i = 0; i < 10; ++i) forward(b);
    }
    int runs = 0;
    auto start = Clock::now();
    while (runs < 5 || seconds_since(start) < seconds) {
      forward(b);
      ++runs;
    }
    const double sps = runs * batch / seconds_since(start);
    std::vector<double> latencies;
    for (int i = 0; i < 5; ++i) forward(one);
    start = Clock::now();
    while (latencies.size() < 20 || seconds_since(start) < seconds / 2) {
      const auto t0 = Clock::now();
      forward(one);
      latencies.push_back(seconds_since(t0) * 1e3);
    }
    std::sort(latencies.begin(), latencies.end());
    std::printf(
        "{\"impl\": \"%s\", \"mode\": \"infer\", \"threads\": %d, \"batch\": %d, "
        "\"infer_sps\": %.1f, \"latency_ms\": %.3f, \"peak_rss_mb\": %.1f}\n",
        label.c_str(), threads, batch, sps, latencies[latencies.size() / 2],
        peak_rss_kb() / 1024.0);
    return 0;
  }
  if (mode == "caption") {
    // Issue 46: a 20-token caption at batch 1 (image encoder, then the decoder with its caches)
    // against one forward pass of the VQA quickstart model at batch 1. --config names the caption
    // model (configs/quickstart_caption.yaml); medians of repeated runs.
    const auto vqa_config = xmodal::config::load_config(
        arg(argc, argv, "vqa-config", "configs/quickstart.yaml"), {"model.vision.init_from="});
    auto vqa = xmodal::tasks::build_model(vqa_config, {37, 19, 10});
    vqa->eval();
    model->eval();
    const Batch one = make_batch(1, config, vocab, classes, aux);
    const Batch vqa_one = make_batch(1, vqa_config, 37, 19, 10);
    auto median_ms = [&](const std::function<void()>& f) {
      for (int i = 0; i < 5; ++i) f();
      std::vector<double> ms;
      const auto start = Clock::now();
      while (ms.size() < 20 || seconds_since(start) < seconds / 3) {
        const auto t0 = Clock::now();
        f();
        ms.push_back(seconds_since(t0) * 1e3);
      }
      std::sort(ms.begin(), ms.end());
      return ms[ms.size() / 2];
    };
    const double vqa_ms = median_ms([&] {
      torch::InferenceMode guard;
      vqa->forward(vqa_one.images, vqa_one.ids, vqa_one.mask, vqa_one.types, {});
    });
    auto g = config.eval.caption;
    g.min_length = g.max_length = 20;  // exactly 20 tokens, then [SEP]
    double caption_ms[2];
    for (int beam : {1, 3}) {
      g.beam_size = beam;
      caption_ms[beam == 1 ? 0 : 1] = median_ms([&] {
        torch::InferenceMode guard;
        xmodal::tasks::generate_captions(*model, model->vision(one.images), 2, 3, g);
      });
    }
    std::printf(
        "{\"impl\": \"xmodal\", \"mode\": \"caption\", \"threads\": %d, \"vqa_forward_ms\": %.3f, "
        "\"caption20_greedy_ms\": %.3f, \"caption20_beam3_ms\": %.3f, \"greedy_vs_vqa\": %.2f, "
        "\"beam3_vs_vqa\": %.2f}\n",
        threads, vqa_ms, caption_ms[0], caption_ms[1], caption_ms[0] / vqa_ms,
        caption_ms[1] / vqa_ms);
    return 0;
  }
  std::fprintf(stderr, "xmodal_bench_model: unknown --mode %s (arch|matmul|train|infer|caption)\n",
               mode.c_str());
  return 2;
}
