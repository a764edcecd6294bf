#include "xmodal/infer/embed.h"

#include <torch/torch.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <fstream>
#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/core/strings.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/transforms.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/infer/session.h"
#include "xmodal/io/image.h"
#include "xmodal/io/lines.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/pretrained.h"
#include "xmodal/text/factory.h"

namespace xmodal::infer {
namespace {

struct Encoders {
  config::Config config;
  std::shared_ptr<const text::Tokenizer> tokenizer;
  models::ViT vision = nullptr;
  models::Bert text = nullptr;
  models::Fusion fusion = nullptr;  // only from a trained checkpoint
  models::Model model = nullptr;    // a retrieval checkpoint's: its projections
};

void log_pretrained(const char* component, const models::PretrainedReport& r) {
  log::info("[embed] {}: {} tensors from {}{}{}{}", component, r.loaded, r.file,
            r.interpolated_positions ? "; position embeddings interpolated" : "",
            r.missing.empty() ? "" : "; missing (left as initialised): " + join(r.missing, ", "),
            r.unused.empty() ? "" : "; unused: " + join(r.unused, ", "));
}

Encoders from_config(const EmbedOptions& o, bool want_image, bool want_text) {
  Encoders e;
  e.config = config::load_config(o.config, o.overrides);  // validated, pretrained folders read
  const auto& m = e.config.model;
  if (want_image) {
    e.vision = models::ViT(models::vision_options(e.config));
    if (!m.vision.pretrained.empty()) {
      log_pretrained("vision", models::load_pretrained_vit(*e.vision, m.vision.pretrained));
    } else {
      log::warn("[embed] vision: no model.vision.pretrained, the encoder is randomly initialised");
    }
  }
  if (want_text) {
    if (e.config.tokenizer.type == config::TokenizerType::word) {
      throw OptionError(
          "embed",
          "tokenizer.type word builds its vocabulary while training; embed text with a "
          "{checkpoint}, or use tokenizer.type wordpiece/sentencepiece");
    }
    auto tokenizer = text::make_tokenizer(e.config, {});
    e.text = models::Bert(models::text_options(e.config, tokenizer->vocab_size()));
    e.tokenizer = tokenizer;
    if (!m.text.pretrained.empty()) {
      log_pretrained("text", models::load_pretrained_bert(*e.text, m.text.pretrained));
    } else {
      log::warn("[embed] text: no model.text.pretrained, the encoder is randomly initialised");
    }
  }
  return e;
}

Encoders from_checkpoint(const EmbedOptions& o) {
  // Validated, on run.device and quantized as eval.quantize says, as predict opens it (embed()
  // below then sets the same threads and device again, for from_config's encoders).
  checkpoint::LoadedModel loaded = Session::open({o.checkpoint, o.overrides, "embed"}).loaded;
  Encoders e;
  e.config = loaded.config;
  e.tokenizer = loaded.artifacts.tokenizer;
  e.vision = loaded.model->vision;
  e.text = loaded.model->text;
  e.fusion = loaded.model->fusion;
  if (has_embeddings(loaded)) e.model = loaded.model;
  return e;
}

struct Item {
  std::string image, text;
};

torch::Tensor unit_rows(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  return F::normalize(x, F::NormalizeFuncOptions().dim(1).eps(1e-12));
}

// The mean of each row's real tokens (mask 1): sentence-transformers' mean pooling, whose
// divisor is clamped at 1e-9.
torch::Tensor masked_mean(const torch::Tensor& tokens, const torch::Tensor& mask) {
  const auto weights = mask.to(tokens.scalar_type()).unsqueeze(-1);  // [b, L, 1]
  return (tokens * weights).sum(1) / weights.sum(1).clamp_min(1e-9);
}

std::vector<Item> read_items(const EmbedOptions& o) {
  std::vector<Item> items;
  if (!o.input.empty()) {
    if (!o.images.empty() || !o.texts.empty()) {
      throw OptionError("embed", "give {input} (a file) or {images}/{texts}, not both");
    }
    io::LineReader in(o.input);  // bounded lines, no devices
    std::string line;
    while (in.next(line)) {
      const int64_t number = in.line_number();
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      const std::string where = o.input + ":" + std::to_string(number) + ": ";
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const nlohmann::json::exception& e) {
        throw std::invalid_argument(where + "not JSON: " + e.what());
      }
      if (!j.is_object() || (j.contains("image") && !j["image"].is_string()) ||
          (j.contains("text") && !j["text"].is_string()) ||
          (!j.contains("image") && !j.contains("text"))) {
        throw std::invalid_argument(where +
                                    "expected an object with string fields \"image\" and/or "
                                    "\"text\"");
      }
      Item item{j.value("image", std::string()), j.value("text", std::string())};
      for (const char* field : {"image", "text"}) {  // "" would silently embed nothing
        if (j.contains(field) && j[field].get<std::string>().empty()) {
          throw std::invalid_argument(where + "\"" + field + "\" is empty");
        }
      }
      if (!items.empty() && (item.image.empty() != items[0].image.empty() ||
                             item.text.empty() != items[0].text.empty())) {
        throw std::invalid_argument(where + "every line needs the same fields as the first");
      }
      items.push_back(std::move(item));
    }
    if (items.empty()) throw std::invalid_argument(o.input + ": no inputs");
    return items;
  }
  const size_t ni = o.images.size(), nt = o.texts.size();
  if (ni == 0 && nt == 0) throw OptionError("embed", "give {images}, {texts} or {input}");
  if (ni > 0 && nt > 0 && ni != nt && nt != 1) {
    throw std::invalid_argument("embed: " + std::to_string(ni) + " images but " +
                                std::to_string(nt) +
                                " texts; give one text per image, or one text for all");
  }
  for (const auto& list : {o.images, o.texts}) {
    for (const auto& value : list) {
      if (value.empty()) throw OptionError("embed", "an empty {images} or {texts}");
    }
  }
  const size_t n = std::max(ni, nt);
  for (size_t i = 0; i < n; ++i) {
    items.push_back({ni ? o.images[i] : "", nt ? o.texts[nt == 1 ? 0 : i] : ""});
  }
  return items;
}

torch::Tensor load_image(const std::string& path, const config::Config& c, bool no_resize) {
  const cv::Mat rgb = io::read_image_rgb(path);
  auto options = data::loader_options(c, /*train=*/false).transform;
  if (no_resize) {
    if (rgb.cols != options.size || rgb.rows != options.size) {
      throw OptionError("", OptionError::literal(path) + ": is " + std::to_string(rgb.cols) + "x" +
                                std::to_string(rgb.rows) + ", but {no_resize} needs " +
                                std::to_string(options.size) + "x" + std::to_string(options.size) +
                                " (data.image_size)");
    }
    options.shorter_side = false;
    options.zoom_out_min = options.zoom_out_max = 0.0;  // only normalise
  }
  std::mt19937_64 rng(0);
  return data::transform_image(rgb, options, rng).pixels;
}

}  // namespace

EmbedResult embed(const EmbedOptions& o) {
  if (o.config.empty() == o.checkpoint.empty()) {
    throw OptionError("embed", "give exactly one of {config} and {checkpoint}");
  }
  if (o.out.empty()) throw OptionError("embed", "{out} (a .safetensors file) is required");
  if (o.batch_size < 1) throw OptionError("embed", "{batch_size} must be >= 1");
  if (o.pool != "none" && o.pool != "mean" && o.pool != "cls") {
    throw OptionError(
        "embed", "{pool} must be none, mean or cls, got '" + OptionError::literal(o.pool) + "'");
  }
  const auto items = read_items(o);
  const bool with_image = !items[0].image.empty(), with_text = !items[0].text.empty();
  if (o.pool != "none" && !with_text) {
    throw OptionError("embed",
                      "{pool} " + OptionError::literal(o.pool) + " pools text tokens; give texts");
  }
  Encoders e = o.checkpoint.empty() ? from_config(o, with_image, with_text) : from_checkpoint(o);
  if (with_image && e.vision.is_empty()) {
    throw std::invalid_argument("embed: this model has no image encoder (fusion mode " +
                                config::to_string(e.config.model.fusion.mode) + ")");
  }
  if (with_text && e.text.is_empty()) {
    throw std::invalid_argument("embed: this model has no text encoder (fusion mode " +
                                config::to_string(e.config.model.fusion.mode) + ")");
  }
  configure_threads(e.config.run.threads);
  const c10::Device device = resolve_device(e.config.run.device);
  for (auto* module :
       std::initializer_list<torch::nn::Module*>{e.vision.is_empty() ? nullptr : e.vision.get(),
                                                 e.text.is_empty() ? nullptr : e.text.get(),
                                                 e.fusion.is_empty() ? nullptr : e.fusion.get()}) {
    if (module) {
      module->to(device);
      module->eval();
    }
  }
  if (!e.model.is_empty()) e.model->to(device);  // the projections (in eval mode, loaded)
  const bool fuse = with_image && with_text && !e.fusion.is_empty() &&
                    e.config.model.fusion.mode != config::FusionMode::late;
  if (with_image && with_text && !fuse) {
    log::info("[embed] no fusion output: {}",
              e.fusion.is_empty() ? "a config's fusion layers are untrained (use a checkpoint)"
                                  : "fusion mode late has no joint tokens");
  }

  std::map<std::string, std::vector<torch::Tensor>> parts;
  torch::InferenceMode inference;
  const int64_t n = static_cast<int64_t>(items.size());
  for (int64_t start = 0; start < n; start += o.batch_size) {
    const int64_t end = std::min<int64_t>(n, start + o.batch_size);
    torch::Tensor image_tokens, text_tokens, mask, device_mask;  // mask on the CPU, and on `device`
    if (with_image) {
      std::vector<torch::Tensor> pixels;
      for (int64_t i = start; i < end; ++i)
        pixels.push_back(load_image(items[i].image, e.config, o.no_resize));
      image_tokens = e.vision(torch::stack(pixels).to(device));  // [b, 1 + P, Dv]
      parts["vision"].push_back(image_tokens.cpu());
      if (!e.model.is_empty()) {
        parts["image_embeds"].push_back(
            models::dual_encoder(*e.model)->embed_image_tokens(image_tokens).cpu());
      }
    }
    if (with_text) {
      const int64_t len = e.config.data.max_text_len;
      auto ids = torch::empty({end - start, len}, torch::kInt64);
      mask = torch::empty({end - start, len}, torch::kInt64);
      for (int64_t i = start; i < end; ++i) {
        const auto enc = e.tokenizer->encode(items[i].text, static_cast<int>(len));
        std::copy(enc.ids.begin(), enc.ids.end(), ids[i - start].data_ptr<int64_t>());
        std::copy(enc.mask.begin(), enc.mask.end(), mask[i - start].data_ptr<int64_t>());
      }
      device_mask = mask.to(device);
      text_tokens = e.text(ids.to(device), device_mask);  // [b, L, Dt]
      parts["text"].push_back(text_tokens.cpu());
      if (!e.model.is_empty()) {
        parts["text_embeds"].push_back(
            models::dual_encoder(*e.model)->embed_text_tokens(text_tokens).cpu());
      }
      parts["text_mask"].push_back(mask);
      parts["text_ids"].push_back(ids);
      if (o.pool != "none") {
        const auto pooled =
            o.pool == "mean" ? masked_mean(text_tokens, device_mask) : text_tokens.select(1, 0);
        parts["text_pooled"].push_back(unit_rows(pooled).cpu());
      }
    }
    if (fuse) {
      const auto out = e.fusion(text_tokens, device_mask.eq(0), image_tokens);
      parts["fusion"].push_back(out.tokens.cpu());
      parts["pooled"].push_back(out.pooled.cpu());
    }
  }
  std::map<std::string, torch::Tensor> tensors;
  EmbedResult result;
  result.count = n;
  for (auto& [name, chunks] : parts) {
    tensors[name] = torch::cat(chunks).contiguous();
    result.tensors.push_back(name);
  }
  io::save_safetensors(o.out, tensors, {{"format", "pt"}, {"producer", "xmodal embed"}});
  return result;
}

}  // namespace xmodal::infer
