#include "xmodal/infer/predictor.h"

#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <functional>
#include <optional>
#include <random>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/transforms.h"
#include "xmodal/infer/explain.h"
#include "xmodal/infer/prepared_input.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/infer/session.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/models/blocks.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/tasks/task.h"

namespace xmodal::infer {

namespace {

torch::Tensor stack_ids(const std::vector<const PreparedInput*>& items,
                        std::vector<int64_t> PreparedInput::*field) {
  const int64_t n = static_cast<int64_t>(items.size());
  const int64_t len = static_cast<int64_t>((items[0]->*field).size());
  auto t = torch::empty({n, len}, torch::kInt64);
  for (int64_t i = 0; i < n; ++i) {
    std::copy((items[i]->*field).begin(), (items[i]->*field).end(), t[i].data_ptr<int64_t>());
  }
  return t;
}

torch::Tensor stack_pixels(const std::vector<const PreparedInput*>& items) {
  std::vector<torch::Tensor> pixels;
  pixels.reserve(items.size());
  for (const auto* p : items) pixels.push_back(p->pixels);
  return torch::stack(pixels);
}

}  // namespace

Predictor::Predictor(const PredictorOptions& options) : options_(options) {
  Session session = Session::open({options.checkpoint, options.overrides, "predict"});
  loaded_ = std::make_unique<checkpoint::LoadedModel>(std::move(session.loaded));
  const c10::Device device = session.device;
  if (!options_.labels.empty()) {
    require_retrieval(*loaded_, "predict {labels}");
    torch::InferenceMode inference;
    labels_ = std::make_unique<Embeddings>();
    labels_->text.push_back(
        class_embeddings(*loaded_, options_.labels, loaded_->config.eval.prompts, device));
  }
}

Predictor::~Predictor() = default;

std::unique_ptr<PreparedInput> Predictor::prepare_parts(const cv::Mat& rgb,
                                                        const std::string* text) const {
  const auto& c = loaded_->config;
  auto prepared = std::make_unique<PreparedInput>();
  PreparedInput& p = *prepared;
  if (!rgb.empty()) {
    auto options = data::loader_options(c, /*train=*/false).transform;
    std::mt19937_64 rng(0);
    auto transformed = data::transform_image(rgb, options, rng);
    p.pixels = transformed.pixels;
    p.region = {transformed.region.x, transformed.region.y, transformed.region.width,
                transformed.region.height};
    p.width = rgb.cols;
    p.height = rgb.rows;
  }
  if (text != nullptr) {
    auto encoding = loaded_->artifacts.tokenizer->encode(*text, c.data.max_text_len);
    p.ids = std::move(encoding.ids);
    p.mask = std::move(encoding.mask);
    p.types = std::move(encoding.types);
    p.has_text = true;
  }
  return prepared;
}

namespace {

// A model that reads text needs one, except with --labels (the labels are then the texts).
void require_text(const checkpoint::LoadedModel& m, bool labels, const std::string& text) {
  if (tasks::task(m.config.task).reads_text() && !labels &&
      text.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw std::invalid_argument("empty text (this model answers about an image and a text)");
  }
}

}  // namespace

std::unique_ptr<PreparedInput> Predictor::prepare(const cv::Mat& rgb,
                                                  const std::string& text) const {
  require_text(*loaded_, labels_ != nullptr, text);
  return prepare_parts(rgb, &text);
}

std::unique_ptr<PreparedInput> Predictor::prepare(const Input& input) const {
  require_text(*loaded_, labels_ != nullptr, input.text);  // before the image is read
  return prepare_parts(io::read_image_rgb(input.image), &input.text);
}

std::vector<tasks::Answer> Predictor::run(const std::vector<const PreparedInput*>& items,
                                          const std::vector<int>& top_k) {
  std::vector<tasks::Answer> out(items.size());
  if (items.empty()) return out;
  const auto& classes = loaded_->artifacts.class_names;
  const tasks::Task& task = tasks::task(loaded_->config.task);
  const auto device = resolve_device(loaded_->config.run.device);
  torch::InferenceMode inference;
  const auto result = loaded_->model->forward(stack_pixels(items).to(device),
                                              stack_ids(items, &PreparedInput::ids).to(device),
                                              stack_ids(items, &PreparedInput::mask).to(device),
                                              stack_ids(items, &PreparedInput::types).to(device));
  const auto scores = task.scores(result);
  if (!warned_non_finite_ && !torch::isfinite(scores).all().item<bool>()) {
    // NaN or Inf weights: the probabilities come out as null; say why, once.
    log::warn(
        "[predict] the model's outputs are not finite (NaN or Inf in the weights of {}?); "
        "their probabilities are written as null",
        loaded_->checkpoint);
    warned_non_finite_ = true;
  }
  for (size_t r = 0; r < items.size(); ++r) {
    const auto row = static_cast<int64_t>(r);
    tasks::Answer& answer = out[r];
    answer = task.answer(result, row, classes, top_k.at(r));
    if (labels_) {
      const auto sims = torch::matmul(
          labels_->text[0], result.at(models::dual_outputs::image_embeds)[row].to(torch::kCPU));
      const auto probs =
          torch::softmax(sims * result.at(models::dual_outputs::logit_scale).to(torch::kCPU), 0);
      const auto order = std::get<1>(probs.sort(0, /*descending=*/true));
      answer.kind = tasks::Answer::Kind::labels;
      for (int64_t k = 0; k < order.size(0); ++k) {
        const int64_t l = order[k].item<int64_t>();
        tasks::ClassScore c;
        c.name = options_.labels[static_cast<size_t>(l)];
        c.probability = probs[l].item<double>();
        c.similarity = sims[l].item<double>();
        answer.classes.push_back(std::move(c));
      }
    }
  }
  return out;
}

Embeddings Predictor::embed(const std::vector<const PreparedInput*>& items) {
  require_retrieval(*loaded_, "embed");
  const auto device = resolve_device(loaded_->config.run.device);
  Embeddings out;
  out.image.assign(items.size(), torch::Tensor());
  out.text.assign(items.size(), torch::Tensor());
  std::vector<const PreparedInput*> with_image, with_text;
  std::vector<size_t> image_rows, text_rows;
  for (size_t i = 0; i < items.size(); ++i) {
    if (items[i]->pixels.defined()) {
      with_image.push_back(items[i]);
      image_rows.push_back(i);
    }
    if (items[i]->has_text) {
      with_text.push_back(items[i]);
      text_rows.push_back(i);
    }
  }
  torch::InferenceMode inference;
  if (!with_image.empty()) {
    const auto e =
        models::embed_images(*loaded_->model, stack_pixels(with_image).to(device)).to(torch::kCPU);
    for (size_t r = 0; r < image_rows.size(); ++r) {
      out.image[image_rows[r]] = e[static_cast<int64_t>(r)];
    }
  }
  if (!with_text.empty()) {
    const auto e =
        models::embed_texts(*loaded_->model, stack_ids(with_text, &PreparedInput::ids).to(device),
                            stack_ids(with_text, &PreparedInput::mask).to(device),
                            stack_ids(with_text, &PreparedInput::types).to(device))
            .to(torch::kCPU);
    for (size_t r = 0; r < text_rows.size(); ++r) {
      out.text[text_rows[r]] = e[static_cast<int64_t>(r)];
    }
  }
  return out;
}

std::vector<Prediction> Predictor::predict(const std::vector<Input>& inputs) {
  std::vector<Prediction> out(inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) {
    out[i].image = inputs[i].image;
    out[i].text = inputs[i].text;
  }
  const size_t batch = static_cast<size_t>(loaded_->config.eval.batch_size);
  for (size_t begin = 0; begin < inputs.size(); begin += batch) {
    const size_t end = std::min(inputs.size(), begin + batch);
    std::vector<std::unique_ptr<PreparedInput>> items;
    std::vector<size_t> rows;
    for (size_t i = begin; i < end; ++i) {
      try {
        items.push_back(prepare(inputs[i]));
        rows.push_back(i);
      } catch (const std::exception& e) {
        out[i].error = e.what();
      }
    }
    std::vector<const PreparedInput*> pointers;
    for (const auto& p : items) pointers.push_back(p.get());
    auto answers = run(pointers, std::vector<int>(items.size(), options_.top_k));
    for (size_t r = 0; r < rows.size(); ++r) out[rows[r]].answer = std::move(answers[r]);
  }
  return out;
}

namespace {

// [N, P] bool from the items' hidden_patches (undefined when none hides any).
torch::Tensor stack_hidden_patches(const std::vector<const PreparedInput*>& items,
                                   int64_t patches) {
  bool any = false;
  for (const auto* p : items) any = any || !p->hidden_patches.empty();
  if (!any) return {};
  auto t = torch::zeros({static_cast<int64_t>(items.size()), patches}, torch::kBool);
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& h = items[i]->hidden_patches;
    if (h.empty()) continue;
    if (static_cast<int64_t>(h.size()) != patches) {
      throw std::invalid_argument("explain: " + std::to_string(h.size()) +
                                  " hidden-patch flags for a grid of " + std::to_string(patches) +
                                  " patches");
    }
    for (int64_t k = 0; k < patches; ++k) {
      if (h[static_cast<size_t>(k)]) t[static_cast<int64_t>(i)][k] = true;
    }
  }
  return t;
}

// The attention layers of one stack, set to keep their maps for as long as this lives.
class KeptAttention {
 public:
  explicit KeptAttention(torch::nn::ModuleList layers) {
    if (!layers) return;
    for (size_t i = 0; i < layers->size(); ++i) {
      modules_.push_back(layers[i]->as<models::EncoderLayerImpl>()->attention);
      modules_.back()->keep_attention = true;
    }
  }
  ~KeptAttention() {
    for (auto& m : modules_) {
      m->keep_attention = false;
      m->attention = torch::Tensor();
    }
  }
  KeptAttention(const KeptAttention&) = delete;
  KeptAttention& operator=(const KeptAttention&) = delete;

  /// Sample 0's maps (and gradients, once backward ran).
  std::vector<AttentionMap> maps() const {
    std::vector<AttentionMap> out;
    for (const auto& m : modules_) {
      const auto grad = m->attention.grad();
      out.push_back({m->attention.detach()[0], grad.defined() ? grad[0] : torch::Tensor()});
    }
    return out;
  }
  int64_t length() const { return modules_.empty() ? 0 : modules_[0]->attention.size(-1); }
  bool empty() const { return modules_.empty(); }

 private:
  std::vector<models::MultiHeadAttention> modules_;
};

// The attention kept by the image encoder's, the text encoder's and the fusion's layers.
struct Kept {
  const KeptAttention& vision;
  const KeptAttention& text;
  const KeptAttention& fusion;
};

// The relevance of the input's words and patches to the explained score, from the attention
// maps the layers kept (and their gradients, for chefer) into `e`: its tokens and weights, its
// grid and patch weights, all summing to 1. `encoders`: follow the fusion's relevance into the
// encoders' own tokens (chefer), or the encoders alone (retrieval).
void add_relevance(const PreparedInput& p, const Kept& layers, bool retrieval, bool encoders,
                   int64_t patches, const std::function<std::string(int64_t)>& token_text,
                   Explanation& e) {
  const KeptAttention& vision = layers.vision;
  const KeptAttention& text = layers.text;
  const KeptAttention& fusion = layers.fusion;
  const std::string& method = e.method;
  const int64_t text_len = static_cast<int64_t>(p.ids.size());
  const auto stack = [&](const KeptAttention& kept, int64_t length) {
    return method == "rollout" ? rollout_relevance(kept.maps(), length)
                               : chefer_relevance(kept.maps(), length);
  };
  // Relevance of the text tokens [L] and of the image tokens [1 + P] (their [CLS] first).
  torch::Tensor text_rel, image_rel;
  if (retrieval) {
    image_rel = stack(vision, 1 + patches)[0].clone();
    text_rel = stack(text, text_len)[0].clone();
    image_rel[0] = 0;  // the [CLS] tokens hold the embeddings themselves
    text_rel[0] = 0;
  } else {
    // Fusion tokens: [CLS] [text: L] [image CLS] [patches: P].
    const int64_t length = fusion.length();
    if (length != 1 + text_len + 1 + patches) {
      throw std::runtime_error("explain: the fusion has " + std::to_string(length) +
                               " tokens, not 1 + " + std::to_string(text_len) + " + 1 + " +
                               std::to_string(patches));
    }
    const auto row = stack(fusion, length)[0];
    text_rel = row.narrow(0, 1, text_len);
    image_rel = row.narrow(0, 1 + text_len, 1 + patches);
    if (encoders) {  // into the encoders' own tokens, through their self-relevance
      const auto through = [&](const KeptAttention& kept, const torch::Tensor& r, int64_t n) {
        return kept.empty() ? r : r.matmul(normalize_self_relevance(stack(kept, n)));
      };
      text_rel = through(text, text_rel, text_len);
      image_rel = through(vision, image_rel, 1 + patches);
    }
    image_rel = image_rel.clone();
    image_rel[0] = 0;  // the image [CLS] is no place in the image
  }
  for (int64_t i = 0; i < text_len; ++i) {
    if (p.mask[static_cast<size_t>(i)] == 0) text_rel[i] = 0;
  }
  const double total = text_rel.sum().item<double>() + image_rel.sum().item<double>();
  const double scale = total > 0 ? 1.0 / total : 0.0;
  for (int64_t i = 0; i < text_len; ++i) {
    if (p.mask[static_cast<size_t>(i)] == 0) break;
    e.tokens.push_back(token_text(p.ids[static_cast<size_t>(i)]));
    e.token_weights.push_back(text_rel[i].item<double>() * scale);
  }
  e.grid = static_cast<int>(std::lround(std::sqrt(static_cast<double>(patches))));
  if (static_cast<int64_t>(e.grid) * e.grid != patches) {
    throw std::runtime_error("explain: " + std::to_string(patches) +
                             " image tokens are not a square grid");
  }
  for (int64_t i = 0; i < patches; ++i) {
    e.patch_weights.push_back(image_rel[1 + i].item<double>() * scale);
  }
}

}  // namespace

Explanation Predictor::explain(const Input& input, const std::string& method) {
  return explain(*prepare(input), method);
}

Explanation Predictor::explain(const PreparedInput& p, const std::string& asked, int64_t target) {
  if (asked != "chefer" && asked != "gradient" && asked != "rollout") {
    throw std::invalid_argument(
        "explain: method must be rollout or chefer (gradient: the old "
        "name of chefer), not " +
        asked);
  }
  // The fusion-only gradient rule of xmodal before 2026-12 pointed at the background (55.7% of
  // hits against 72.2% through the image encoder too: docs/explain.md); its name now means
  // the rule through every layer.
  const std::string method = asked == "gradient" ? "chefer" : asked;
  const auto& c = loaded_->config;
  const bool retrieval = has_embeddings(*loaded_);
  if (!tasks::task(c.task).reads_text()) {
    throw std::invalid_argument(
        "explain needs an image+text model that answers; this checkpoint is task " +
        config::to_string(c.task) +
        (tasks::task(c.task).classes_are_vocabulary()
             ? " (it generates text; explanations of generated words are not provided)"
             : " (an image encoder alone)"));
  }
  if (!retrieval && c.model.fusion.mode != config::FusionMode::concat) {
    throw std::invalid_argument("explain needs model.fusion.mode concat (this checkpoint: " +
                                config::to_string(c.model.fusion.mode) + ")");
  }
  if (!p.pixels.defined() || !p.has_text) {
    throw std::invalid_argument("explain needs an image and a text");
  }
  const auto device = resolve_device(c.run.device);
  auto& model = loaded_->model;
  const bool gradients = method != "rollout";
  // rollout of a fusion model reads the fusion's layers alone (the image tokens as the fusion
  // receives them stand for their patches); chefer follows every layer into the encoders.
  const bool encoders = retrieval || method == "chefer";
  const auto layers_of = [](bool use, const torch::nn::ModuleList& l) {
    return use ? l : torch::nn::ModuleList();
  };
  const KeptAttention vision(layers_of(encoders, model->vision->layers));
  const KeptAttention text(model->text ? layers_of(encoders, model->text->layers)
                                       : torch::nn::ModuleList(nullptr));
  const KeptAttention fusion(retrieval ? torch::nn::ModuleList(nullptr) : model->fusion->layers);
  if (!retrieval && fusion.empty())
    throw std::invalid_argument("explain: the fusion has no layers");

  const int64_t patches = model->vision->num_patches();
  const auto ids = torch::tensor(p.ids, torch::kInt64).unsqueeze(0);
  const auto mask = torch::tensor(p.mask, torch::kInt64).unsqueeze(0);
  const auto types = torch::tensor(p.types, torch::kInt64).unsqueeze(0);
  const auto hidden = stack_hidden_patches({&p}, patches);
  model->zero_grad();
  std::optional<torch::NoGradGuard> no_grad;
  if (!gradients) no_grad.emplace();
  const auto out =
      model->forward(p.pixels.unsqueeze(0).to(device), ids.to(device), mask.to(device),
                     types.to(device), {}, hidden.defined() ? hidden.to(device) : hidden);
  Explanation e;
  e.method = method;
  const auto& classes = loaded_->artifacts.class_names;
  const torch::Tensor scores = tasks::task(c.task).scores(out)[0];
  if (retrieval) {
    e.target = 0;
    e.answer = "match";
    e.probability = scores[0].item<double>();  // the cosine similarity
  } else {
    e.target = target >= 0 ? target : scores.argmax().item<int64_t>();
    if (e.target >= scores.size(0)) {
      throw std::invalid_argument("explain: class " + std::to_string(e.target) + " of " +
                                  std::to_string(scores.size(0)));
    }
    e.answer = classes.at(static_cast<size_t>(e.target));
    e.probability = torch::sigmoid(scores[e.target]).item<double>();
  }
  if (gradients) scores[e.target].backward();
  no_grad.reset();
  torch::NoGradGuard after;

  const auto* tokenizer = loaded_->artifacts.tokenizer.get();
  const auto token_text = [tokenizer](int64_t id) -> std::string {
    if (id < 0 || id >= tokenizer->vocab_size()) return std::to_string(id);
    return tokenizer->id_to_token(id);
  };
  add_relevance(p, {vision, text, fusion}, retrieval, encoders, patches, token_text, e);
  return e;
}

std::vector<double> Predictor::target_scores(const std::vector<const PreparedInput*>& items,
                                             int64_t target) {
  std::vector<double> out;
  if (items.empty()) return out;
  const auto& c = loaded_->config;
  const auto device = resolve_device(c.run.device);
  torch::InferenceMode inference;
  const auto hidden = stack_hidden_patches(items, loaded_->model->vision->num_patches());
  const auto result = loaded_->model->forward(stack_pixels(items).to(device),
                                              stack_ids(items, &PreparedInput::ids).to(device),
                                              stack_ids(items, &PreparedInput::mask).to(device),
                                              stack_ids(items, &PreparedInput::types).to(device),
                                              {}, hidden.defined() ? hidden.to(device) : hidden);
  auto scores = tasks::task(c.task).scores(result).to(torch::kCPU, torch::kFloat64);
  if (target < 0 || target >= scores.size(1)) {
    throw std::invalid_argument("target_scores: class " + std::to_string(target) + " of " +
                                std::to_string(scores.size(1)));
  }
  scores = scores.select(1, target);
  if (!has_embeddings(*loaded_)) scores = torch::sigmoid(scores);
  const auto* data = scores.contiguous().data_ptr<double>();
  out.assign(data, data + scores.size(0));
  return out;
}

namespace {

// Text in `canvas` at (x, baseline y); returns its width.
int put(cv::Mat& canvas, const std::string& text, int x, int y, double scale,
        const cv::Scalar& color, int thickness = 1) {
  int baseline = 0;
  const auto size = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, thickness, &baseline);
  cv::putText(canvas, text, {x, y}, cv::FONT_HERSHEY_SIMPLEX, scale, color, thickness, cv::LINE_AA);
  return size.width;
}

}  // namespace

void write_heat_map(const std::string& image_path, const Explanation& e, const std::string& out_png,
                    int side) {
  const int grid = e.grid;
  if (grid <= 0 || e.patch_weights.size() != static_cast<size_t>(grid) * grid) {
    throw std::invalid_argument("write_heat_map: the explanation has no patch grid");
  }
  const cv::Mat rgb = io::read_image_rgb(image_path);
  cv::Mat image;
  cv::resize(rgb, image, {side, side}, 0, 0, rgb.cols > side ? cv::INTER_AREA : cv::INTER_NEAREST);
  // Scaled by the largest weight (0 = no relevance): patches compare within the picture.
  const double high = *std::max_element(e.patch_weights.begin(), e.patch_weights.end());
  cv::Mat heat(grid, grid, CV_32F);
  for (int i = 0; i < grid * grid; ++i) {
    const double w = e.patch_weights[static_cast<size_t>(i)];
    heat.at<float>(i / grid, i % grid) =
        high > 0 ? static_cast<float>(std::max(0.0, w) / high) : 0.f;
  }
  cv::Mat up, heat8, colored, blend;
  cv::resize(heat, up, {side, side}, 0, 0, cv::INTER_LINEAR);
  up.convertTo(heat8, CV_8U, 255.0);
  cv::applyColorMap(heat8, colored, cv::COLORMAP_JET);  // BGR
  cv::cvtColor(colored, colored, cv::COLOR_BGR2RGB);
  cv::addWeighted(image, 0.5, colored, 0.5, 0, blend);
  // The region holding half of the image's relevance: a contour on both panels.
  std::vector<double> sorted(e.patch_weights);
  std::sort(sorted.begin(), sorted.end(), std::greater<>());
  double total = 0, running = 0, level = 0;
  for (double w : sorted) total += std::max(0.0, w);
  for (double w : sorted) {
    running += std::max(0.0, w);
    level = w;
    if (running >= 0.5 * total) break;
  }
  cv::Mat region = cv::Mat::zeros(side, side, CV_8U);
  const double cell = static_cast<double>(side) / grid;
  std::vector<std::pair<double, int>> ranked;
  for (int i = 0; i < grid * grid; ++i) {
    const double w = e.patch_weights[static_cast<size_t>(i)];
    ranked.push_back({w, i});
    if (total > 0 && w >= level && w > 0) {
      cv::rectangle(region,
                    cv::Rect(cv::Point(static_cast<int>((i % grid) * cell),
                                       static_cast<int>((i / grid) * cell)),
                             cv::Point(static_cast<int>((i % grid + 1) * cell),
                                       static_cast<int>((i / grid + 1) * cell))),
                    255, cv::FILLED);
    }
  }
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(region, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  std::stable_sort(ranked.begin(), ranked.end(),
                   [](const auto& a, const auto& b) { return a.first > b.first; });
  const auto annotate = [&](cv::Mat& panel) {
    cv::drawContours(panel, contours, -1, {0, 0, 0}, 4, cv::LINE_AA);
    cv::drawContours(panel, contours, -1, {255, 255, 255}, 2, cv::LINE_AA);
    for (int r = 0; r < std::min<int>(3, static_cast<int>(ranked.size())); ++r) {
      if (!(ranked[static_cast<size_t>(r)].first > 0)) break;
      const int i = ranked[static_cast<size_t>(r)].second;
      const cv::Point corner(static_cast<int>((i % grid) * cell) + 4,
                             static_cast<int>((i / grid) * cell) + 22);
      const std::string label = std::to_string(r + 1);
      cv::putText(panel, label, corner, cv::FONT_HERSHEY_SIMPLEX, 0.7, {0, 0, 0}, 4, cv::LINE_AA);
      cv::putText(panel, label, corner, cv::FONT_HERSHEY_SIMPLEX, 0.7, {255, 255, 0}, 2,
                  cv::LINE_AA);
    }
  };
  annotate(image);
  annotate(blend);

  // Under the two panels: the answer, the method, then each word with a bar for its weight.
  const int gap = 8, width = 2 * side + gap;
  double image_share = 0;
  for (double w : e.patch_weights) image_share += w;
  double word_high = 0;
  for (double w : e.token_weights) word_high = std::max(word_high, w);
  const int per_row = 4, row_height = 30;
  const int word_rows = static_cast<int>((e.tokens.size() + per_row - 1) / per_row);
  cv::Mat canvas(side + 86 + row_height * word_rows, width, CV_8UC3, cv::Scalar(255, 255, 255));
  image.copyTo(canvas(cv::Rect(0, 0, side, side)));
  blend.copyTo(canvas(cv::Rect(side + gap, 0, side, side)));
  char text[256];
  std::snprintf(text, sizeof text, "answer: %s   p = %.3f", e.answer.c_str(), e.probability);
  put(canvas, text, 8, side + 30, 0.8, {0, 0, 0}, 2);
  std::snprintf(text, sizeof text,
                "%s  |  image %.0f%%, text %.0f%%  |  outline: half of the image's relevance, "
                "1-3: top patches",
                e.method.c_str(), 100 * image_share, 100 * (1 - image_share));
  put(canvas, text, 8, side + 62, 0.5, {70, 70, 70});
  const int column = width / per_row;
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    const int x = 8 + static_cast<int>(i % per_row) * column;
    const int y = side + 92 + row_height * static_cast<int>(i / per_row);
    const double w = e.token_weights[i];
    const int bar =
        word_high > 0 ? static_cast<int>((column - 16) * std::max(0.0, w) / word_high) : 0;
    cv::rectangle(canvas, cv::Rect(x, y - 18, std::max(bar, 1), 24), {255, 200, 120}, cv::FILLED);
    std::snprintf(text, sizeof text, "%s %.2f", e.tokens[i].c_str(), w);
    put(canvas, text, x + 3, y, 0.55, {0, 0, 120});
  }
  io::write_file_atomic(out_png, io::encode_png(canvas));
}

}  // namespace xmodal::infer
