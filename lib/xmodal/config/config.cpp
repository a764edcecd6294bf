#include "xmodal/config/config.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include "xmodal/core/error.h"
#include "xmodal/core/runtime.h"
#include "xmodal/core/strings.h"

namespace xmodal::config {
namespace {

// Walks a config and records (full key, scalar text) for every field.
class Flattener {
 public:
  template <class T>
  void field(const char* name, T& value, const char* /*doc*/, Range /*range*/ = {}) {
    out.emplace_back(prefix + name, detail::scalar_text(value));
  }
  template <class S>
  void section(const char* name, S& sub, const char* /*doc*/) {
    const std::string saved = prefix;
    prefix += std::string(name) + ".";
    sub.visit(*this);
    prefix = saved;
  }
  std::string prefix;
  std::vector<std::pair<std::string, std::string>> out;
};

}  // namespace

namespace detail {

std::string scalar_text(const std::string& value) {
  // Always double-quoted: no string can be misread as a number, bool or null.
  return quote_json(value);
}

std::string scalar_text(double value) {
  // Shortest %g text that reads back to the same double (0.0003, not 0.00029999999999999997).
  char buf[64];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(buf, sizeof(buf), "%.*g", precision, value);
    if (std::strtod(buf, nullptr) == value) break;
  }
  std::string text = buf;
  // Keep it visibly a float (1.0, not 1) so the dump documents the field's type.
  if (text.find_first_of(".eEn") == std::string::npos) text += ".0";
  return text;
}

std::string scalar_text(int64_t value) { return std::to_string(value); }

std::string scalar_text(bool value) { return value ? "true" : "false"; }

std::string scalar_text(const std::vector<double>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + scalar_text(values[i]);
  return text + "]";
}

std::string scalar_text(const std::vector<std::string>& values) {
  std::string text = "[";
  for (size_t i = 0; i < values.size(); ++i) text += (i ? ", " : "") + scalar_text(values[i]);
  return text + "]";
}

}  // namespace detail

std::vector<std::pair<std::string, std::string>> flatten(const Config& config) {
  Config copy = config;
  Flattener flattener;
  copy.visit(flattener);
  return std::move(flattener.out);
}

std::vector<std::string> all_keys() {
  std::vector<std::string> keys;
  for (auto& [key, value] : flatten(Config{})) keys.push_back(key);
  return keys;
}

bool operator==(const Config& a, const Config& b) { return flatten(a) == flatten(b); }

std::string Config::origin(const std::string& key) const {
  const auto it = origins.find(key);
  return it == origins.end() ? "default" : it->second;
}

std::vector<std::pair<std::string, MetricMode>> task_metrics(Task task) {
  using M = MetricMode;
  switch (task) {
    case Task::vqa:
      return {{"accuracy", M::max},
              {"accuracy_yes_no", M::max},
              {"accuracy_number", M::max},
              {"accuracy_other", M::max},
              {"loss", M::min}};
    case Task::counting:
      return {{"accuracy", M::max}, {"exact_match", M::max}, {"mae", M::min}, {"rmse", M::min},
              {"f1_micro", M::max}, {"f1_macro", M::max},    {"map", M::max}, {"loss", M::min}};
    case Task::classify:
      return {{"accuracy", M::max}, {"top5_accuracy", M::max}, {"loss", M::min}};
    case Task::retrieval:
      return {{"rsum", M::max},   {"i2t_r1", M::max}, {"i2t_r5", M::max},  {"i2t_r10", M::max},
              {"t2i_r1", M::max}, {"t2i_r5", M::max}, {"t2i_r10", M::max}, {"loss", M::min}};
    case Task::caption:
      return {{"cider_d", M::max},
              {"bleu_4", M::max},
              {"bleu_1", M::max},
              {"rouge_l", M::max},
              {"loss", M::min}};
  }
  return {};
}

namespace {

// The problems of a config, each reported at the place its first key was set.
class Problems {
 public:
  explicit Problems(const Config& c) : c_(c) {}
  void add(const std::string& key, const std::string& text) {
    const std::string where = c_.origin(key);
    list.push_back((where == "default" ? std::string() : where + ": ") + text);
  }
  std::vector<std::string> list;

 private:
  const Config& c_;
};

// The device, and the sizes the layers need to fit together.
void check_device_and_shapes(const Config& c, Problems& p) {
  const std::string device_problem = check_device_spec(c.run.device);
  if (!device_problem.empty()) p.add("run.device", "run.device: " + device_problem);

  auto check_heads = [&](const std::string& section, int hidden, int heads) {
    if (hidden % heads != 0) {
      p.add(section + ".heads", section + ".hidden (" + std::to_string(hidden) +
                                    ") must be divisible by " + section + ".heads (" +
                                    std::to_string(heads) + ")");
    }
  };
  check_heads("model.vision", c.model.vision.hidden, c.model.vision.heads);
  check_heads("model.text", c.model.text.hidden, c.model.text.heads);
  check_heads("model.fusion", c.model.fusion.hidden, c.model.fusion.heads);

  if (c.data.image_size % c.model.vision.patch_size != 0) {
    p.add("model.vision.patch_size",
          "model.vision.patch_size (" + std::to_string(c.model.vision.patch_size) +
              ") must divide data.image_size (" + std::to_string(c.data.image_size) + ", set at " +
              c.origin("data.image_size") + ")");
  }
}

// The key of an auxiliary loss that is on (the first of them), for messages about them all.
std::string aux_key(const AuxConfig& aux) {
  if (aux.dense > 0) return "train.aux.dense";
  if (aux.locate > 0) return "train.aux.locate";
  return "train.aux.counting";
}

// The auxiliary losses need an image encoder and a task with object instances.
void check_aux_losses(const Config& c, Problems& p) {
  const auto& aux = c.train.aux;
  for (const auto& [key, weight] :
       {std::pair<std::string, double>{"train.aux.counting", aux.counting},
        {"train.aux.dense", aux.dense},
        {"train.aux.locate", aux.locate}}) {
    if (weight > 0 && c.model.fusion.mode == FusionMode::text_only) {
      p.add(key,
            key + " needs the image encoder; model.fusion.mode is text_only (set " + key + ": 0)");
    }
  }
  if (aux.counting > 0 && c.task != Task::vqa) {
    p.add("train.aux.counting",
          "train.aux.counting is for task vqa (counting is the task "
          "itself)");
  }
}

// The conv stem's patch, the text length and the tokenizer's files.
void check_stem_and_text(const Config& c, Problems& p) {
  const int patch = c.model.vision.patch_size;
  if (c.model.vision.stem == Stem::conv && (patch & (patch - 1)) != 0) {
    p.add("model.vision.patch_size", "model.vision.patch_size (" + std::to_string(patch) +
                                         ") must be a power of 2 with model.vision.stem conv");
  }
  if (c.model.vision.positions == Positions::sincos && c.model.vision.hidden % 4 != 0) {
    p.add("model.vision.positions",
          "model.vision.positions sincos needs model.vision.hidden a multiple of 4, got " +
              std::to_string(c.model.vision.hidden));
  }
  if (c.model.text.max_position < c.data.max_text_len) {
    p.add("model.text.max_position",
          "model.text.max_position (" + std::to_string(c.model.text.max_position) +
              ") must be >= data.max_text_len (" + std::to_string(c.data.max_text_len) +
              ", set at " + c.origin("data.max_text_len") + ")");
  }
  if (c.tokenizer.type != TokenizerType::word && c.tokenizer.path.empty() &&
      c.model.text.pretrained.empty()) {
    p.add("tokenizer.type",
          "tokenizer.type " + to_string(c.tokenizer.type) + " needs tokenizer.path (" +
              (c.tokenizer.type == TokenizerType::wordpiece ? "a BERT vocab.txt"
                                                            : "a SentencePiece .model") +
              ") or model.text.pretrained");
  }
}

// What the precision, the step count and the warmup allow.
void check_precision_and_schedule(const Config& c, Problems& p) {
  if (c.train.precision == Precision::fp16) {
    // fp16 gradients underflow without a dynamic loss scaler (torch.cuda.amp.GradScaler), which
    // LibTorch 1.13's C++ API lacks and xmodal does not implement yet.
    p.add("train.precision",
          "train.precision fp16 needs dynamic loss scaling, which xmodal does not have yet; "
          "use bf16, which keeps fp32's exponent range, or fp32");
  }
  if (c.eval.precision == Precision::fp16) {
    p.add("eval.precision",
          "eval.precision fp16 is not provided (its range overflows where "
          "bf16's does not); use bf16 or fp32");
  }
  if (c.eval.precision != Precision::fp32 && c.eval.quantize == Quantize::int8) {
    p.add("eval.precision", "eval.precision " + to_string(c.eval.precision) +
                                " and eval.quantize int8 exclude each other: the int8 layers "
                                "compute in float32; choose one");
  }
  if (c.train.max_steps == 0 && c.train.epochs == 0) {
    p.add("train.epochs", "train.max_steps and train.epochs are both 0: nothing to train");
  }
  if (c.train.warmup >= 1.0 && c.train.warmup != std::floor(c.train.warmup)) {
    p.add("train.warmup", "train.warmup (" + detail::scalar_text(c.train.warmup) +
                              ") is >= 1, so it counts steps and must be a whole number "
                              "(use a value below 1 for a fraction of the steps)");
  }
}

// What task caption reads and what its decoder needs.
void check_caption(const Config& c, Problems& p) {
  if (c.task != Task::caption) return;
  if (c.data.dataset == Dataset::vqa) {
    p.add("data.dataset",
          "task caption needs captions: data.dataset coco, scenes or karpathy, not vqa");
  }
  if (c.model.fusion.mode != FusionMode::concat) {
    p.add("model.fusion.mode",
          "task caption decodes with the concat fusion: model.fusion.mode concat, not " +
              to_string(c.model.fusion.mode));
  }
  if (c.train.aux.any()) {
    p.add(aux_key(c.train.aux), "task caption has no auxiliary losses (train.aux.*: 0)");
  }
  const auto& g = c.eval.caption;
  if (g.min_length > g.max_length) {
    p.add("eval.caption.min_length", "eval.caption.min_length (" + std::to_string(g.min_length) +
                                         ") exceeds eval.caption.max_length (" +
                                         std::to_string(g.max_length) + ")");
  }
  if (g.max_length + 1 > c.model.text.max_position) {
    p.add("eval.caption.max_length", "eval.caption.max_length (" + std::to_string(g.max_length) +
                                         ") + [CLS] exceeds model.text.max_position (" +
                                         std::to_string(c.model.text.max_position) + ")");
  }
}

// What task retrieval reads and what its ITM head needs.
void check_retrieval(const Config& c, Problems& p) {
  if (c.task != Task::retrieval) {
    if (c.data.dataset == Dataset::karpathy && c.task != Task::caption) {
      p.add("data.dataset",
            "data.dataset karpathy has captions only: it needs task: retrieval or caption");
    }
    if (c.train.itm > 0) p.add("train.itm", "train.itm is for task retrieval");
    return;
  }
  if (c.data.dataset == Dataset::vqa) {
    p.add("data.dataset",
          "task retrieval needs captions: data.dataset coco, scenes or karpathy, not vqa");
  }
  if (c.train.aux.any()) {
    p.add(aux_key(c.train.aux), "task retrieval has no auxiliary losses (train.aux.*: 0)");
  }
  if (c.train.itm > 0 && c.model.fusion.mode != FusionMode::concat) {
    p.add("train.itm",
          "train.itm needs model.fusion.mode concat (the matching head reads the "
          "concat fusion), not " +
              to_string(c.model.fusion.mode));
  }
  if (c.eval.rerank_k > 0 && c.train.itm <= 0) {
    p.add("eval.rerank_k", "eval.rerank_k re-ranks by the ITM head, which train.itm 0 leaves out");
  }
  if (c.eval.prompts.empty()) p.add("eval.prompts", "eval.prompts: give at least one template");
  for (const auto& prompt : c.eval.prompts) {
    if (prompt.find("{}") == std::string::npos) {
      p.add("eval.prompts", "eval.prompts: template '" + prompt + "' has no {} for the class name");
    }
  }
}

// Normalisation, augmentation, and which data sets serve which task.
void check_data(const Config& c, Problems& p) {
  for (const auto& [key, values] :
       {std::pair{"data.mean", c.data.mean}, {"data.std", c.data.stddev}}) {
    if (values.size() != 3) {
      p.add(key, std::string(key) + ": expected 3 values (R, G, B), got " +
                     std::to_string(values.size()));
    }
  }
  const auto& zoom = c.data.augment.zoom_out;
  if (!zoom.empty() && (zoom.size() != 2 || !(zoom[0] >= 1) || !(zoom[1] >= zoom[0]))) {
    p.add("data.augment.zoom_out",
          "data.augment.zoom_out: expected [min, max] with 1 <= min <= max, or [] (off)");
  }
  for (double s : c.data.stddev) {
    if (!(s > 0)) p.add("data.std", "data.std: every value must be > 0");
  }

  if (c.task == Task::vqa && c.data.dataset == Dataset::coco) {
    p.add("data.dataset", "data.dataset coco has no questions: task vqa needs vqa or scenes");
  }
  if (c.task == Task::counting && c.data.dataset == Dataset::vqa) {
    p.add("data.dataset",
          "data.dataset vqa has no object counts: task counting needs coco or scenes");
  }
  const bool class_data =
      c.data.dataset == Dataset::fashion_mnist || c.data.dataset == Dataset::image_folder;
  if (c.task == Task::classify && !class_data) {
    p.add("data.dataset", "task classify needs data.dataset fashion_mnist or image_folder, not " +
                              to_string(c.data.dataset));
  }
  if (c.task != Task::classify && class_data) {
    p.add("data.dataset", "data.dataset " + to_string(c.data.dataset) +
                              " has image labels only: it needs task: classify");
  }
  if (c.task == Task::classify && c.train.aux.any()) {
    p.add(aux_key(c.train.aux),
          "task classify has no object instances for the auxiliary losses (train.aux.*: 0)");
  }
  if (c.task == Task::classify && !c.model.text.init_from.empty()) {
    p.add("model.text.init_from", "task classify has no text encoder to initialise");
  }
  check_retrieval(c, p);
  check_caption(c, p);
}

// A frozen encoder must have been loaded from somewhere.
void check_freezing(const Config& c, Problems& p) {
  if (c.model.vision.freeze_steps != 0 && c.model.vision.init_from.empty() &&
      c.model.vision.pretrained.empty()) {
    p.add("model.vision.freeze_steps",
          "model.vision.freeze_steps would hold a randomly initialised encoder fixed; set "
          "model.vision.init_from or model.vision.pretrained");
  }
  if (c.model.vision.freeze_stem && c.model.vision.init_from.empty()) {
    p.add("model.vision.freeze_stem",
          "model.vision.freeze_stem would hold a randomly initialised stem fixed; set "
          "model.vision.init_from");
  }
  if (c.model.vision.freeze_stem && c.model.vision.stem != Stem::conv) {
    p.add("model.vision.freeze_stem", "model.vision.freeze_stem needs model.vision.stem: conv");
  }
  if (c.model.text.freeze_steps != 0 && c.model.text.init_from.empty() &&
      c.model.text.pretrained.empty()) {
    p.add("model.text.freeze_steps",
          "model.text.freeze_steps would hold a randomly initialised encoder fixed; set "
          "model.text.init_from or model.text.pretrained");
  }
}

// train.early_stopping.metric must be one of the task's, in its direction.
void check_early_stopping(const Config& c, Problems& p) {
  const auto metrics = task_metrics(c.task);
  const auto& es = c.train.early_stopping;
  std::vector<std::string> names;
  for (const auto& [name, mode] : metrics) names.push_back(name);
  const auto found = std::find_if(metrics.begin(), metrics.end(),
                                  [&](const auto& m) { return m.first == es.metric; });
  if (found == metrics.end()) {
    std::string text = "train.early_stopping.metric: unknown metric '" + es.metric + "' for task " +
                       to_string(c.task) + " (expected one of: " + join(names, ", ") + ")";
    const std::string guess = closest_match(es.metric, names);
    if (!guess.empty()) text += "; did you mean " + guess + "?";
    p.add("train.early_stopping.metric", text);
  } else if (found->second != es.mode) {
    p.add("train.early_stopping.mode", "train.early_stopping.mode is " + to_string(es.mode) +
                                           " but " + es.metric + " is better when " +
                                           (found->second == MetricMode::max ? "higher" : "lower") +
                                           " (set mode: " + to_string(found->second) + ")");
  }
}

}  // namespace

void validate(const Config& c) {
  Problems p(c);
  check_device_and_shapes(c, p);
  check_aux_losses(c, p);
  check_stem_and_text(c, p);
  check_precision_and_schedule(c, p);
  check_data(c, p);
  check_freezing(c, p);
  check_early_stopping(c, p);
  if (!p.list.empty()) throw ConfigError(p.list);
}

}  // namespace xmodal::config
