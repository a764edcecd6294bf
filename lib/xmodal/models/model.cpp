#include "xmodal/models/model.h"

#include <fmt/format.h>
#include <torch/torch.h>

namespace xmodal::models {

ModelImpl::ModelImpl(const ModelOptions& options_) : options(options_) {
  const FusionMode mode = options.fusion.mode();
  TORCH_CHECK(!uses_image(mode) || options.vision, "Model: fusion mode ", fusion_mode_name(mode),
              " needs vision options");
  TORCH_CHECK(!uses_text(mode) || options.text, "Model: fusion mode ", fusion_mode_name(mode),
              " needs text options");
  reset();
}

void ModelImpl::reset() {
  const FusionMode mode = options.fusion.mode();
  if (options.task == Task::classify) {
    TORCH_CHECK(options.vision, "Model: task classify needs vision options");
    vision = register_module("vision", ViT(*options.vision));
    classify_head =
        register_module("head", torch::nn::Linear(vision->output_dim(), options.num_classes));
    return;
  }
  FusionOptions fusion_options = options.fusion;
  if (uses_image(mode)) {
    vision = register_module("vision", ViT(*options.vision));
    fusion_options.image_dim(vision->output_dim());  // encoders size the fusion
  }
  if (uses_text(mode)) {
    text = register_module("text", Bert(*options.text));
    fusion_options.text_dim(text->output_dim());
  }
  fusion = register_module("fusion", Fusion(fusion_options));
  if (options.task == Task::vqa) {
    vqa_head = register_module(
        "head",
        VqaHead(VqaHeadOptions(fusion->output_dim(), options.head_hidden, options.num_classes)));
  } else {
    counting_head = register_module(
        "head", CountingHead(CountingHeadOptions(fusion->output_dim(), options.head_hidden,
                                                 options.num_classes, options.max_count)));
  }
  if (options.aux_counting_classes > 0) {
    TORCH_CHECK(vision, "an auxiliary counting head needs the image encoder");
    aux_counting = register_module(
        "aux_counting",
        CountingHead(CountingHeadOptions(vision->output_dim(), options.head_hidden,
                                         options.aux_counting_classes, options.max_count)));
  }
  if (options.aux_dense_classes > 0) {
    TORCH_CHECK(vision, "an auxiliary dense head needs the image encoder");
    aux_dense = register_module("aux_dense",
                                torch::nn::Linear(vision->output_dim(), options.aux_dense_classes));
  }
}

ModelOutput ModelImpl::forward(const torch::Tensor& images, const torch::Tensor& input_ids,
                               const torch::Tensor& attention_mask,
                               const torch::Tensor& token_type_ids,
                               const torch::Tensor& image_index) {
  torch::Tensor image_tokens, text_tokens, text_padding;
  if (vision) {
    image_tokens = vision(images);  // [N, 1 + P, Dv]
    if (image_index.defined()) {
      image_tokens = image_tokens.index_select(0, image_index.to(image_tokens.device()));
    }
  }
  if (text) {
    text_tokens = text(input_ids, attention_mask, token_type_ids);  // [B, L, Dt]
    if (attention_mask.defined()) text_padding = attention_mask.eq(0);
  }
  ModelOutput out;
  if (classify_head) {
    out.pooled = image_tokens.select(1, 0);  // the ViT's [CLS] token, after its final norm
    out.logits = classify_head(out.pooled);
    return out;
  }
  if (aux_counting) {
    // patch tokens only: [B, P, Dv] -> [B, Dv]
    auto aux = aux_counting(image_tokens.narrow(1, 1, image_tokens.size(1) - 1).mean(1));
    out.aux_presence = aux.presence;
    out.aux_counts = aux.counts;
  }
  if (aux_dense) out.aux_dense = aux_dense(image_tokens.narrow(1, 1, image_tokens.size(1) - 1));
  out.pooled = fusion->forward(text_tokens, text_padding, image_tokens, pooled_only_fusion).pooled;
  if (vqa_head) {
    out.logits = vqa_head(out.pooled);
  } else {
    auto logits = counting_head(out.pooled);
    out.presence = logits.presence;
    out.counts = logits.counts;
  }
  return out;
}

int64_t count_parameters(const torch::nn::Module& module) {
  int64_t n = 0;
  for (const auto& p : module.parameters()) n += p.numel();
  return n;
}

namespace {

std::string human(int64_t n) {
  if (n >= 1'000'000) return fmt::format("{:.2f}M", n / 1e6);
  if (n >= 1'000) return fmt::format("{:.1f}K", n / 1e3);
  return std::to_string(n);
}

// "xmodal::models::ViTImpl" -> "ViT", "torch::nn::LinearImpl" -> "Linear".
std::string short_type(const std::string& type) {
  std::string name = type.substr(type.rfind("::") == std::string::npos ? 0 : type.rfind("::") + 2);
  if (name.size() > 4 && name.compare(name.size() - 4, 4, "Impl") == 0)
    name.resize(name.size() - 4);
  return name;
}

void describe_into(const torch::nn::Module& module, const std::string& name, int depth,
                   int max_depth, std::string& out) {
  out += fmt::format("{:<{}}{:<24} {:<22} {:>9}\n", "", 2 * depth, name, short_type(module.name()),
                     human(count_parameters(module)));
  if (depth >= max_depth) return;
  for (const auto& child : module.named_children()) {
    if (count_parameters(*child.value()) == 0) continue;  // dropout and the like
    describe_into(*child.value(), child.key(), depth + 1, max_depth, out);
  }
}

}  // namespace

std::string describe_model(const torch::nn::Module& module, int max_depth) {
  std::string out;
  describe_into(module, "model", 0, max_depth, out);
  return out;
}

}  // namespace xmodal::models
