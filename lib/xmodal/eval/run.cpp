#include "xmodal/eval/run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/eval/evaluator.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::eval {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json finite_or_null(double v) { return std::isfinite(v) ? json(v) : json(nullptr); }

std::string default_out_dir(const std::string& checkpoint, const std::string& split, int64_t step) {
  const fs::path ckpt(checkpoint);
  if (ckpt.parent_path().filename() == "checkpoints") {
    return (ckpt.parent_path().parent_path() / "eval" / (split + "-step-" + std::to_string(step)))
        .string();
  }
  return (ckpt / ("eval-" + split)).string();
}

std::string vqa_table(const std::map<std::string, double>& m, int64_t examples) {
  std::string t =
      fmt::format("| {:<16} | {:>8} |\n|{:-<18}|{:->10}|\n", "VQA accuracy", "%", "", "");
  const auto row = [&](const std::string& name, const std::string& key) {
    const auto it = m.find(key);
    if (it != m.end()) t += fmt::format("| {:<16} | {:>8.2f} |\n", name, 100 * it->second);
  };
  row("overall", "accuracy");
  row("yes/no", "accuracy_yes_no");
  row("number", "accuracy_number");
  row("other", "accuracy_other");
  for (const auto& [key, value] : m) {  // answer types other data sets may have
    if (key.rfind("accuracy_", 0) == 0 && key != "accuracy_yes_no" && key != "accuracy_number" &&
        key != "accuracy_other") {
      t += fmt::format("| {:<16} | {:>8.2f} |\n", key.substr(9), 100 * value);
    }
  }
  t += fmt::format("({} questions, loss {:.4f})\n", examples, m.count("loss") ? m.at("loss") : 0.0);
  return t;
}

std::string counting_table(const EvalResult& r, const std::vector<std::string>& names) {
  const auto& m = r.metrics;
  std::string t = fmt::format("| {:<14} | {:>7} | {:>6} | {:>6} | {:>6} | {:>7} |\n", "category",
                              "count %", "MAE", "F1 %", "AP %", "present");
  t += "|----------------|---------|--------|--------|--------|---------|\n";
  for (size_t k = 0; k < r.categories.size(); ++k) {
    const auto& c = r.categories[k];
    t += fmt::format("| {:<14} | {:>7.2f} | {:>6.3f} | {:>6.2f} | {:>6} | {:>7} |\n", names[k],
                     100 * c.count_accuracy, c.mae, 100 * c.f1,
                     std::isnan(c.average_precision)
                         ? std::string("-")
                         : fmt::format("{:.2f}", 100 * c.average_precision),
                     c.support);
  }
  t += fmt::format(
      "count accuracy {:.2f}%, exact match {:.2f}%, MAE {:.3f}, RMSE {:.3f}, presence F1 micro "
      "{:.2f}% macro {:.2f}%, mAP {:.2f}% ({} images, loss {:.4f})\n",
      100 * m.at("accuracy"), 100 * m.at("exact_match"), m.at("mae"), m.at("rmse"),
      100 * m.at("f1_micro"), 100 * m.at("f1_macro"), 100 * m.at("map"), r.examples, m.at("loss"));
  return t;
}

}  // namespace

EvalSummary run_eval(const EvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  auto loaded = checkpoint::load_trained_model(options.checkpoint);
  config::Config c = loaded.config;
  std::vector<std::string> sets = options.overrides;
  if (!options.data_root.empty())
    sets.push_back("data.root=" + config::detail::scalar_text(options.data_root));
  config::apply_overrides(c, sets);
  config::validate(c);
  configure_threads(c.run.threads);
  const c10::Device device = resolve_device(c.run.device);
  loaded.model->to(device);

  const auto& classes = loaded.artifacts.class_names;
  data::AnswerVocab vocab(classes);
  auto split = std::make_shared<data::TaskData>(
      data::load_split(c, options.split, c.task == config::Task::vqa ? &vocab : nullptr));
  if (c.task != config::Task::vqa && split->class_names != classes) {
    throw std::runtime_error("split " + options.split + " of " + c.data.root +
                             " has other categories than the checkpoint was trained on");
  }
  if (split->examples.empty()) {  // an accuracy of 0.00 over nothing is not a result
    throw std::runtime_error("split " + options.split + " of " + c.data.root +
                             " has no examples to evaluate");
  }
  data::Loader loader(split, loaded.artifacts.tokenizer, data::loader_options(c, false));
  log::info("[eval] {} on {} split {} ({} examples)", loaded.checkpoint, c.data.root, options.split,
            split->examples.size());
  const auto r = evaluate(loaded.model, *split, loader,
                          {c.train.loss.presence_weight, c.train.loss.count_weight}, device,
                          c.eval.vqa_protocol);

  EvalSummary s;
  s.checkpoint = loaded.checkpoint;
  s.step = loaded.step;
  s.examples = r.examples;
  s.has_targets = split->has_targets;
  s.metrics = r.metrics;
  s.out_dir = options.out_dir.empty()
                  ? default_out_dir(loaded.checkpoint, options.split, loaded.step)
                  : options.out_dir;
  std::error_code ec;
  fs::create_directories(s.out_dir, ec);
  if (ec) throw std::runtime_error("cannot create " + s.out_dir + ": " + ec.message());

  json metrics = json::object();
  for (const auto& [k, v] : r.metrics) metrics[k] = finite_or_null(v);
  json summary = {{"checkpoint", loaded.checkpoint},
                  {"step", loaded.step},
                  {"task", config::to_string(c.task)},
                  {"data_root", c.data.root},
                  {"split", options.split},
                  {"examples", r.examples},
                  {"skipped", r.skipped},
                  {"has_targets", split->has_targets},
                  {"metrics", metrics}};
  if (c.task == config::Task::vqa) {
    json results = json::array();
    for (size_t i = 0; i < r.indices.size(); ++i) {
      results.push_back({{"question_id", split->examples[r.indices[i]].id},
                         {"answer", classes.at(r.answers[i])}});
    }
    io::write_file_atomic((fs::path(s.out_dir) / "results.json").string(), results.dump() + "\n");
    s.table = split->has_targets ? vqa_table(r.metrics, r.examples)
                                 : fmt::format(
                                       "{} questions answered (no annotations: results "
                                       "only)\n",
                                       r.examples);
  } else if (c.task == config::Task::classify) {
    std::string lines;
    for (size_t i = 0; i < r.indices.size(); ++i) {
      const auto& e = split->examples[r.indices[i]];
      json line = {{"id", e.id},
                   {"image", e.image_path},
                   {"label", classes.at(r.answers[i])},
                   {"score", r.confidences[i]}};
      if (split->has_targets) line["target"] = classes.at(e.label);
      lines += line.dump() + "\n";
    }
    io::write_file_atomic((fs::path(s.out_dir) / "predictions.jsonl").string(), lines);
    s.table = split->has_targets
                  ? fmt::format("{} images: accuracy {:.2f}%, top-5 {:.2f}%\n", r.examples,
                                100 * r.metrics.at("accuracy"), 100 * r.metrics.at("top5_accuracy"))
                  : fmt::format("{} images classified (no labels)\n", r.examples);
  } else {
    std::string lines;
    const auto presence = r.presence.contiguous();
    const auto counts = r.counts.contiguous();
    for (size_t i = 0; i < r.indices.size(); ++i) {
      json counts_json = json::object(), presence_json = json::object();
      for (size_t k = 0; k < classes.size(); ++k) {
        const auto at = static_cast<int64_t>(i);
        const auto kk = static_cast<int64_t>(k);
        counts_json[classes[k]] = counts[at][kk].item<int64_t>();
        presence_json[classes[k]] = presence[at][kk].item<float>();
      }
      lines += json{{"image_id", split->examples[r.indices[i]].id},
                    {"counts", counts_json},
                    {"presence", presence_json}}
                   .dump() +
               "\n";
    }
    io::write_file_atomic((fs::path(s.out_dir) / "predictions.jsonl").string(), lines);
    if (split->has_targets) {
      json per_category = json::array();
      for (size_t k = 0; k < r.categories.size(); ++k) {
        const auto& cat = r.categories[k];
        per_category.push_back({{"category", classes[k]},
                                {"count_accuracy", cat.count_accuracy},
                                {"mae", cat.mae},
                                {"precision", cat.precision},
                                {"recall", cat.recall},
                                {"f1", cat.f1},
                                {"average_precision", finite_or_null(cat.average_precision)},
                                {"support", cat.support}});
      }
      summary["per_category"] = per_category;
      s.table = counting_table(r, classes);
    } else {
      s.table = fmt::format("{} images predicted (no annotations)\n", r.examples);
    }
  }
  io::write_file_atomic((fs::path(s.out_dir) / "metrics.json").string(), summary.dump(2) + "\n");
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace xmodal::eval
