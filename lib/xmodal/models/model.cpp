#include "xmodal/models/model.h"

#include "xmodal/models/precision.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>
#include <stdexcept>

namespace xmodal::models {

torch::Tensor Encoded::sample_image_tokens() const {
  if (!image_tokens.defined() || !image_index.defined()) return image_tokens;
  if (!sample_image_tokens_.defined()) {
    sample_image_tokens_ = image_tokens.index_select(0, image_index.to(image_tokens.device()));
  }
  return sample_image_tokens_;
}

torch::Tensor Encoded::sample_patch_padding() const {
  if (!patch_padding.defined() || !image_index.defined()) return patch_padding;
  return patch_padding.index_select(0, image_index.to(patch_padding.device()));
}

ModelImpl::ModelImpl(const ModelOptions& options_) : options(options_) {
  const FusionMode mode = options.fusion.mode();
  TORCH_CHECK(!uses_image(mode) || options.vision, "Model: fusion mode ", fusion_mode_name(mode),
              " needs vision options");
  TORCH_CHECK(!uses_text(mode) || options.text, "Model: fusion mode ", fusion_mode_name(mode),
              " needs text options");
  TORCH_CHECK(options.make_head, "Model: no head (ModelOptions::make_head)");
  reset();
}

void ModelImpl::reset() {
  const FusionMode mode = options.fusion.mode();
  HeadSizes sizes;
  FusionOptions fusion_options = options.fusion;
  if (uses_image(mode)) {
    vision = register_module("vision", ViT(*options.vision));
    sizes.vision = vision->output_dim();
    fusion_options.image_dim(sizes.vision);  // encoders size the fusion
  }
  if (uses_text(mode)) {
    text = register_module("text", Bert(*options.text));
    sizes.text = text->output_dim();
    fusion_options.text_dim(sizes.text);
  }
  if (options.build_fusion) sizes.fusion = fusion_options.hidden();  // Fusion::output_dim()
  // The head is made before the fusion and attached after it: each module is initialised (from
  // the global generator) in the order of the model's checkpoints so far, whatever the task.
  head_ = options.make_head(sizes);
  if (options.build_fusion) fusion = register_module("fusion", Fusion(fusion_options));
  head_->attach(*this);
  if (options.aux_counting_classes > 0) {
    TORCH_CHECK(vision, "an auxiliary counting head needs the image encoder");
    aux_counting = register_module(
        "aux_counting",
        CountingHead(CountingHeadOptions(vision->output_dim(), options.head_hidden,
                                         options.aux_counting_classes, options.max_count)));
  }
  if (options.aux_dense_classes > 0) {
    TORCH_CHECK(vision, "an auxiliary dense head needs the image encoder");
    aux_dense =
        register_module("aux_dense", Linear(vision->output_dim(), options.aux_dense_classes));
  }
  if (options.aux_locate_classes > 0) {
    TORCH_CHECK(vision, "an auxiliary locating head needs the image encoder");
    aux_locate =
        register_module("aux_locate", Linear(vision->output_dim(), 2 * options.aux_locate_classes));
  }
}

const torch::Tensor& ModelOutput::at(const std::string& name) const {
  const auto it = outputs.find(name);
  if (it == outputs.end() || !it->second.defined()) {
    throw std::logic_error("model output '" + name + "': this model's head does not make it");
  }
  return it->second;
}

torch::Tensor ModelOutput::get(const std::string& name) const {
  const auto it = outputs.find(name);
  return it == outputs.end() ? torch::Tensor() : it->second;
}

ModelOutput ModelImpl::forward(const torch::Tensor& images, const torch::Tensor& input_ids,
                               const torch::Tensor& attention_mask,
                               const torch::Tensor& token_type_ids,
                               const torch::Tensor& image_index,
                               const torch::Tensor& patch_padding) {
  if (compute_dtype == c10::kFloat) {
    return compute(images, input_ids, attention_mask, token_type_ids, image_index, patch_padding);
  }
  ModelOutput out;
  {
    AutocastGuard autocast(compute_dtype, images.defined() ? images.device() : input_ids.device(),
                           /*keep_cast_cache=*/!is_training());
    out = compute(images, input_ids, attention_mask, token_type_ids, image_index, patch_padding);
  }
  const auto to_float = [](torch::Tensor& t) {
    if (t.defined() && t.is_floating_point() && t.scalar_type() != torch::kFloat32) {
      t = t.to(torch::kFloat32);
    }
  };
  for (auto* t : {&out.pooled, &out.aux_presence, &out.aux_counts, &out.aux_dense, &out.aux_locate,
                  &out.image_features}) {
    to_float(*t);
  }
  for (auto& [name, t] : out.outputs) to_float(t);
  return out;
}

ModelOutput ModelImpl::compute(const torch::Tensor& images, const torch::Tensor& input_ids,
                               const torch::Tensor& attention_mask,
                               const torch::Tensor& token_type_ids,
                               const torch::Tensor& image_index,
                               const torch::Tensor& patch_padding) {
  Encoded in;
  in.image_index = image_index;
  in.patch_padding = patch_padding;
  in.input_ids = input_ids;
  in.attention_mask = attention_mask;
  if (vision) in.image_tokens = vision(images, patch_padding);  // [N, 1 + P, Dv]
  if (text && encode_text) {
    in.text_tokens = text(input_ids, attention_mask, token_type_ids);  // [B, L, Dt]
    if (attention_mask.defined()) in.text_padding = attention_mask.eq(0);
  }
  ModelOutput out;
  if (aux_counting || aux_dense || aux_locate) {
    const auto tokens = in.sample_image_tokens();
    const auto patches = tokens.narrow(1, 1, tokens.size(1) - 1);  // [B, P, Dv]
    if (aux_counting) {
      auto aux = aux_counting(patches.mean(1));
      out.aux_presence = aux.presence;
      out.aux_counts = aux.counts;
    }
    if (aux_dense) out.aux_dense = aux_dense(patches);
    if (aux_locate) out.aux_locate = aux_locate(tokens.select(1, 0)).view({tokens.size(0), 2, -1});
  }
  head_->forward(*this, in, out);
  return out;
}

torch::Tensor ModelImpl::fuse(const Encoded& in) {
  TORCH_CHECK(fusion, "Model: this head reads the fusion, which the model did not build");
  return fusion
      ->forward(in.text_tokens, in.text_padding, in.sample_image_tokens(), pooled_only_fusion,
                in.sample_patch_padding())
      .pooled;
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
