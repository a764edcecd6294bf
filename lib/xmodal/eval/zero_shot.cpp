#include "xmodal/eval/zero_shot.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/infer/session.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/tasks/classify.h"
#include "xmodal/tasks/task.h"

namespace xmodal::eval {
namespace fs = std::filesystem;
using nlohmann::json;

ZeroShotSummary run_zero_shot(const ZeroShotOptions& o) {
  const auto start = std::chrono::steady_clock::now();
  // Validated now, as a plain evaluation always was (an override it refuses was taken here).
  infer::SessionOptions options(o.checkpoint, o.overrides, "zero-shot eval");
  options.check = [](const checkpoint::LoadedModel& m) {
    infer::require_retrieval(m, "eval {zero_shot}");
  };
  infer::Session session = infer::Session::open(options);
  checkpoint::LoadedModel& m = session.loaded;
  const c10::Device device = session.device;

  // The classification data set read as task classify would read it.
  config::Config c = m.config;
  c.task = config::Task::classify;
  if (o.dataset == "fashion_mnist") {
    c.data.dataset = config::Dataset::fashion_mnist;
    c.data.root = o.data_root.empty() ? "/usr/share/datasets/fashion-mnist" : o.data_root;
  } else if (o.dataset == "image_folder") {
    if (o.data_root.empty()) {
      throw OptionError("eval", "{zero_shot} image_folder needs {data_root}");
    }
    c.data.dataset = config::Dataset::image_folder;
    c.data.root = o.data_root;
    c.data.train_split = o.split;  // the classes are the split's own folders
  } else {
    throw OptionError("eval", "{zero_shot}: unknown data set '" + OptionError::literal(o.dataset) +
                                  "' (expected fashion_mnist or image_folder)");
  }
  if (!std::isfinite(o.zoom_out) || o.zoom_out > 100 || o.zoom_out < 0 ||
      (o.zoom_out > 0 && o.zoom_out < 1)) {
    throw OptionError(
        "eval", fmt::format("{{zoom_out}} must be from 1 to 100 (or 0 = off), got {}", o.zoom_out));
  }
  c.data.augment.zoom_out =
      o.zoom_out > 0 ? std::vector<double>{o.zoom_out, o.zoom_out} : std::vector<double>{};
  auto data = std::make_shared<data::TaskData>(tasks::load_split(c, o.split));
  if (data->examples.empty()) {
    throw std::runtime_error("split " + o.split + " of " + c.data.root + " has no images");
  }
  log::info("[zero-shot] {} classes from {} prompt template(s); {} images of {} {}",
            data->class_names.size(), m.config.eval.prompts.size(), data->examples.size(),
            c.data.root, o.split);
  const auto classes =
      infer::class_embeddings(m, data->class_names, m.config.eval.prompts, device);  // [C, E]

  data::Loader loader(data, m.artifacts.tokenizer, data::loader_options(c, /*train=*/false));
  loader.start(0);
  torch::NoGradGuard no_grad;
  int64_t n = 0, top1 = 0, top5 = 0;
  const int64_t k = std::min<int64_t>(5, classes.size(0));
  std::vector<int64_t> per_class_n(data->class_names.size()),
      per_class_hit(data->class_names.size());
  while (auto batch = loader.next()) {
    const auto images = models::embed_images(*m.model, batch->images.to(device))
                            .index_select(0, batch->image_index.to(device))
                            .to(torch::kCPU);
    const auto scores = torch::matmul(images, classes.t());
    const auto best = std::get<1>(scores.topk(k, 1));
    const auto& labels = batch->target(tasks::kClassifyLabels);  // read as task classify
    for (int64_t i = 0; i < labels.size(0); ++i) {
      const int64_t y = labels[i].item<int64_t>();
      const bool hit = best[i][0].item<int64_t>() == y;
      top1 += hit;
      top5 += best[i].eq(y).any().item<bool>();
      ++per_class_n[y];
      per_class_hit[y] += hit;
      ++n;
    }
  }
  ZeroShotSummary s;
  s.images = n;
  s.metrics = {{"top1", n ? 100.0 * top1 / n : 0.0}, {"top5", n ? 100.0 * top5 / n : 0.0}};
  s.table =
      fmt::format("zero-shot {} ({} images, {} classes): top-1 {:.2f}%, top-5 {:.2f}%\n", o.dataset,
                  n, data->class_names.size(), s.metrics["top1"], s.metrics["top5"]);
  json per_class = json::object();
  for (size_t y = 0; y < per_class_n.size(); ++y) {
    // a class without images has no accuracy (null, "-"), not 0%
    if (per_class_n[y] == 0) {
      per_class[data->class_names[y]] = nullptr;
      s.table += fmt::format("  {:<16} {:>7} (no images)\n", data->class_names[y], "-");
      continue;
    }
    const double acc = 100.0 * per_class_hit[y] / per_class_n[y];
    per_class[data->class_names[y]] = acc;
    s.table += fmt::format("  {:<16} {:6.2f}%\n", data->class_names[y], acc);
  }
  s.out_dir = o.out_dir.empty()
                  ? (fs::path(m.checkpoint) / ("zero-shot-" + o.dataset + "-" + o.split)).string()
                  : o.out_dir;
  std::error_code ec;
  fs::create_directories(s.out_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + s.out_dir + ": " + ec.message());
  const json summary = {{"checkpoint", m.checkpoint},
                        {"step", m.step},
                        {"zero_shot", o.dataset},
                        {"data_root", c.data.root},
                        {"split", o.split},
                        {"images", n},
                        {"prompts", m.config.eval.prompts},
                        {"zoom_out", o.zoom_out},
                        {"metrics", {{"top1", s.metrics["top1"]}, {"top5", s.metrics["top5"]}}},
                        {"per_class_top1", per_class}};
  io::write_file_atomic((fs::path(s.out_dir) / "metrics.json").string(),
                        summary.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace xmodal::eval
