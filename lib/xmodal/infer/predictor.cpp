#include "xmodal/infer/predictor.h"

#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <cmath>
#include <random>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/transforms.h"
#include "xmodal/infer/prepared_input.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/models/blocks.h"
#include "xmodal/tasks/task.h"

namespace xmodal::infer {
using nlohmann::json;

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

Predictor::Predictor(const PredictorOptions& options)
    : loaded_(std::make_unique<checkpoint::LoadedModel>(
          checkpoint::load_trained_model(options.checkpoint))),
      options_(options) {
  config::apply_overrides(loaded_->config, options.overrides);
  config::validate(loaded_->config);
  configure_threads(loaded_->config.run.threads);
  const auto device = resolve_device(loaded_->config.run.device);
  checkpoint::quantize_model(*loaded_, loaded_->config.eval.quantize, device);
  loaded_->model->to(device);
  loaded_->model->eval();
  if (!options_.labels.empty()) {
    require_retrieval(*loaded_, "predict --labels");
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
    p.pixels = data::transform_image(rgb, options, rng).pixels;
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

std::vector<json> Predictor::run(const std::vector<const PreparedInput*>& items,
                                 const std::vector<int>& top_k) {
  std::vector<json> out(items.size(), json::object());
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
    json& j = out[r];
    const auto row = static_cast<int64_t>(r);
    task.describe(result, row, classes, top_k.at(r), j);
    if (labels_) {
      const auto sims = torch::matmul(labels_->text[0], result.image_embeds[row].to(torch::kCPU));
      const auto probs = torch::softmax(sims * result.logit_scale.to(torch::kCPU), 0);
      const auto order = std::get<1>(probs.sort(0, /*descending=*/true));
      json ranked = json::array();
      for (int64_t k = 0; k < order.size(0); ++k) {
        const int64_t l = order[k].item<int64_t>();
        ranked.push_back({{"label", options_.labels[static_cast<size_t>(l)]},
                          {"probability", tasks::finite_or_null(probs[l].item<double>())},
                          {"similarity", tasks::finite_or_null(sims[l].item<double>())}});
      }
      j["labels"] = ranked;
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
        loaded_->model->embed_images(stack_pixels(with_image).to(device)).to(torch::kCPU);
    for (size_t r = 0; r < image_rows.size(); ++r) {
      out.image[image_rows[r]] = e[static_cast<int64_t>(r)];
    }
  }
  if (!with_text.empty()) {
    const auto e = loaded_->model
                       ->embed_texts(stack_ids(with_text, &PreparedInput::ids).to(device),
                                     stack_ids(with_text, &PreparedInput::mask).to(device),
                                     stack_ids(with_text, &PreparedInput::types).to(device))
                       .to(torch::kCPU);
    for (size_t r = 0; r < text_rows.size(); ++r) {
      out.text[text_rows[r]] = e[static_cast<int64_t>(r)];
    }
  }
  return out;
}

std::vector<std::string> Predictor::predict(const std::vector<Input>& inputs) {
  std::vector<std::string> out(inputs.size());
  const size_t batch = static_cast<size_t>(loaded_->config.eval.batch_size);
  const auto dump = [](const json& j) {
    // the text echoed back may hold invalid UTF-8: replaced by U+FFFD, never an exception
    return j.dump(-1, ' ', false, json::error_handler_t::replace);
  };
  for (size_t begin = 0; begin < inputs.size(); begin += batch) {
    const size_t end = std::min(inputs.size(), begin + batch);
    std::vector<std::unique_ptr<PreparedInput>> items;
    std::vector<size_t> rows;
    for (size_t i = begin; i < end; ++i) {
      try {
        items.push_back(prepare(inputs[i]));
        rows.push_back(i);
      } catch (const std::exception& e) {
        out[i] = dump({{"image", inputs[i].image}, {"text", inputs[i].text}, {"error", e.what()}});
      }
    }
    std::vector<const PreparedInput*> pointers;
    for (const auto& p : items) pointers.push_back(p.get());
    const auto described = run(pointers, std::vector<int>(items.size(), options_.top_k));
    for (size_t r = 0; r < rows.size(); ++r) {
      json j = {{"image", inputs[rows[r]].image}, {"text", inputs[rows[r]].text}};
      j.update(described[r]);
      out[rows[r]] = dump(j);
    }
  }
  return out;
}

Explanation Predictor::explain(const Input& input, const std::string& method) {
  if (method != "gradient" && method != "rollout") {
    throw std::invalid_argument("explain: method must be gradient or rollout, not " + method);
  }
  const auto& c = loaded_->config;
  if (!tasks::task(c.task).reads_text()) {
    throw std::invalid_argument("explain needs an image+text model; this checkpoint is task " +
                                config::to_string(c.task) + " (an image encoder alone)");
  }
  if (c.model.fusion.mode != config::FusionMode::concat) {
    throw std::invalid_argument("explain needs model.fusion.mode concat (this checkpoint: " +
                                config::to_string(c.model.fusion.mode) + ")");
  }
  const auto device = resolve_device(c.run.device);
  const auto prepared = prepare(input);
  const PreparedInput& p = *prepared;
  auto& model = loaded_->model;
  auto& layers = model->fusion->layers;
  std::vector<models::MultiHeadAttention> attentions;
  for (size_t i = 0; i < layers->size(); ++i) {
    attentions.push_back(layers[i]->as<models::EncoderLayerImpl>()->attention);
    attentions.back()->keep_attention = true;
  }
  struct Reset {
    std::vector<models::MultiHeadAttention>& a;
    ~Reset() {
      for (auto& m : a) {
        m->keep_attention = false;
        m->attention = torch::Tensor();
      }
    }
  } reset{attentions};
  if (attentions.empty()) throw std::invalid_argument("explain: the fusion has no layers");

  const auto ids = torch::tensor(p.ids, torch::kInt64).unsqueeze(0);
  const auto mask = torch::tensor(p.mask, torch::kInt64).unsqueeze(0);
  const auto types = torch::tensor(p.types, torch::kInt64).unsqueeze(0);
  model->zero_grad();
  const auto out = model->forward(p.pixels.unsqueeze(0).to(device), ids.to(device), mask.to(device),
                                  types.to(device));
  Explanation e;
  e.method = method;
  torch::Tensor target;
  const auto& classes = loaded_->artifacts.class_names;
  const torch::Tensor scores = tasks::task(c.task).scores(out)[0];
  const int64_t top = scores.argmax().item<int64_t>();
  e.answer = classes.at(top);
  e.probability = torch::sigmoid(scores[top]).item<double>();
  if (method == "gradient") scores[top].backward();

  const int64_t length = attentions[0]->attention.size(-1);
  torch::NoGradGuard no_grad;
  auto relevance = torch::eye(length, torch::kFloat64);
  for (auto& a : attentions) {
    const auto attn = a->attention.detach().to(torch::kCPU, torch::kFloat64)[0];  // [H, T, T]
    if (method == "gradient") {
      const auto grad = a->attention.grad();
      if (!grad.defined()) throw std::runtime_error("explain: no gradient reached the attention");
      const auto weighted = (grad.to(torch::kCPU, torch::kFloat64)[0] * attn).clamp_min(0).mean(0);
      relevance = relevance + weighted.matmul(relevance);
    } else {
      auto hat = 0.5 * attn.mean(0) + 0.5 * torch::eye(length, torch::kFloat64);
      hat = hat / hat.sum(-1, true);
      relevance = hat.matmul(relevance);
    }
  }
  // Token layout of the concat fusion: [CLS] [text: L] [image CLS] [patches: P].
  const int64_t text_len = static_cast<int64_t>(p.ids.size());
  const int64_t patches = length - 1 - text_len - 1;
  const auto row = relevance[0].clone();
  row[0] = 0;  // the fusion [CLS] itself
  for (int64_t i = 0; i < text_len; ++i) {
    if (p.mask[static_cast<size_t>(i)] == 0) row[1 + i] = 0;
  }
  const double total = row.sum().item<double>();
  const auto norm = total > 0 ? row / total : row;
  const auto* tokenizer = loaded_->artifacts.tokenizer.get();
  const auto token_text = [tokenizer](int64_t id) -> std::string {
    if (id < 0 || id >= tokenizer->vocab_size()) return std::to_string(id);
    return tokenizer->id_to_token(id);
  };
  for (int64_t i = 0; i < text_len; ++i) {
    if (p.mask[static_cast<size_t>(i)] == 0) break;
    const int64_t id = p.ids[static_cast<size_t>(i)];
    e.tokens.push_back(token_text(id));
    e.token_weights.push_back(norm[1 + i].item<double>());
  }
  e.grid = static_cast<int>(std::lround(std::sqrt(static_cast<double>(patches))));
  if (static_cast<int64_t>(e.grid) * e.grid != patches) {
    throw std::runtime_error("explain: " + std::to_string(patches) +
                             " image tokens are not a square grid");
  }
  for (int64_t i = 0; i < patches; ++i)
    e.patch_weights.push_back(norm[2 + text_len + i].item<double>());
  return e;
}

void write_heat_map(const std::string& image_path, const Explanation& e, const std::string& out_png,
                    int side) {
  const cv::Mat rgb = io::read_image_rgb(image_path);
  cv::Mat image;
  cv::resize(rgb, image, {side, side}, 0, 0, cv::INTER_AREA);
  cv::Mat heat(e.grid, e.grid, CV_32F);
  // Min-max scaled: relevance is often nearly uniform with a few standouts.
  const auto [low, high] = std::minmax_element(e.patch_weights.begin(), e.patch_weights.end());
  const double span = *high - *low;
  for (int i = 0; i < e.grid * e.grid; ++i) {
    heat.at<float>(i / e.grid, i % e.grid) =
        span > 0 ? static_cast<float>((e.patch_weights[static_cast<size_t>(i)] - *low) / span)
                 : 0.f;
  }
  cv::Mat up, heat8, colored;
  cv::resize(heat, up, {side, side}, 0, 0, cv::INTER_CUBIC);
  up.convertTo(heat8, CV_8U, 255.0);
  cv::applyColorMap(heat8, colored, cv::COLORMAP_JET);  // BGR
  cv::cvtColor(colored, colored, cv::COLOR_BGR2RGB);
  cv::Mat blend;
  cv::addWeighted(image, 0.55, colored, 0.45, 0, blend);
  // A strip under the image: the answer and the words with their weights.
  const int font = cv::FONT_HERSHEY_SIMPLEX;
  const int lines = 2 + static_cast<int>((e.tokens.size() + 3) / 4);
  cv::Mat canvas(side + 22 * lines + 8, side, CV_8UC3, cv::Scalar(255, 255, 255));
  blend.copyTo(canvas(cv::Rect(0, 0, side, side)));
  char text[128];
  std::snprintf(text, sizeof text, "answer: %s (%.2f)", e.answer.c_str(), e.probability);
  cv::putText(canvas, text, {6, side + 20}, font, 0.5, {0, 0, 0}, 1, cv::LINE_AA);
  double image_share = 0;
  for (double w : e.patch_weights) image_share += w;
  std::snprintf(text, sizeof text, "image %.0f%% / text %.0f%% (%s)", 100 * image_share,
                100 * (1 - image_share), e.method.c_str());
  cv::putText(canvas, text, {6, side + 42}, font, 0.45, {60, 60, 60}, 1, cv::LINE_AA);
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    std::snprintf(text, sizeof text, "%s %.2f", e.tokens[i].c_str(), e.token_weights[i]);
    const int x = 6 + static_cast<int>(i % 4) * (side / 4);
    const int y = side + 64 + 22 * static_cast<int>(i / 4);
    cv::putText(canvas, text, {x, y}, font, 0.42, {0, 0, 160}, 1, cv::LINE_AA);
  }
  io::write_file_atomic(out_png, io::encode_png(canvas));
}

}  // namespace xmodal::infer
