#include "xmodal/eval/run.h"

#include <nlohmann/json.hpp>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/eval/evaluator.h"
#include "xmodal/infer/session.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/task.h"

namespace xmodal::eval {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

std::string default_out_dir(const std::string& checkpoint, const std::string& split, int64_t step) {
  const fs::path ckpt(checkpoint);
  if (ckpt.parent_path().filename() == "checkpoints") {
    return (ckpt.parent_path().parent_path() / "eval" / (split + "-step-" + std::to_string(step)))
        .string();
  }
  return (ckpt / ("eval-" + split)).string();
}

}  // namespace

EvalSummary run_eval(const EvalOptions& options) {
  const auto start = std::chrono::steady_clock::now();
  std::vector<std::string> sets = options.overrides;
  if (!options.data_root.empty())
    sets.push_back("data.root=" + config::detail::scalar_text(options.data_root));
  infer::Session session = infer::Session::open({options.checkpoint, sets, "eval"});
  checkpoint::LoadedModel& loaded = session.loaded;
  const config::Config& c = loaded.config;
  const c10::Device device = session.device;

  const auto& classes = loaded.artifacts.class_names;
  const tasks::Task& task = tasks::task(c.task);
  auto split = std::make_shared<data::TaskData>(tasks::load_split(
      c, options.split, task.vocabulary_from_training_split() ? &classes : nullptr));
  if (!task.vocabulary_from_training_split() && !task.classes_are_vocabulary() &&
      split->class_names != classes) {
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
  const auto r = evaluate(loaded.model, *split, loader, classes,
                          {c.train.loss.presence_weight, c.train.loss.count_weight}, device,
                          c.eval.vqa_protocol, c.eval.rerank_k);

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
  for (const auto& [k, v] : r.metrics) metrics[k] = tasks::finite_or_null(v);
  json summary = {{"checkpoint", loaded.checkpoint},
                  {"step", loaded.step},
                  {"task", config::to_string(c.task)},
                  {"data_root", c.data.root},
                  {"split", options.split},
                  {"examples", r.examples},
                  {"skipped", r.skipped},
                  {"has_targets", split->has_targets},
                  {"quantization", config::to_string(loaded.quantization)},
                  {"metrics", metrics}};
  r.predictions->write(s.out_dir, summary);
  s.table = r.predictions->table(r.metrics);
  io::write_file_atomic((fs::path(s.out_dir) / "metrics.json").string(),
                        summary.dump(2, ' ', false, json::error_handler_t::replace) + "\n");
  s.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return s;
}

}  // namespace xmodal::eval
