#include "xmodal/models/model.h"

#include <fmt/format.h>
#include <torch/torch.h>

#include <cmath>

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
    classify_head = register_module("head", Linear(vision->output_dim(), options.num_classes));
    return;
  }
  if (options.task == Task::retrieval) {
    TORCH_CHECK(options.vision && options.text, "Model: task retrieval needs both encoders");
    vision = register_module("vision", ViT(*options.vision));
    text = register_module("text", Bert(*options.text));
    image_projection = register_module(
        "image_projection",
        Linear(torch::nn::LinearOptions(vision->output_dim(), options.embed_dim).bias(false)));
    text_projection = register_module(
        "text_projection",
        Linear(torch::nn::LinearOptions(text->output_dim(), options.embed_dim).bias(false)));
    // CLIP's initialisation: a temperature of 0.07.
    logit_scale = register_parameter("logit_scale", torch::full({}, std::log(1 / 0.07)));
    if (options.itm) {
      FusionOptions fusion_options = options.fusion;
      fusion_options.image_dim(vision->output_dim());
      fusion_options.text_dim(text->output_dim());
      fusion = register_module("fusion", Fusion(fusion_options));
      itm_head = register_module("head", Linear(fusion->output_dim(), 2));
    }
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
    aux_dense =
        register_module("aux_dense", Linear(vision->output_dim(), options.aux_dense_classes));
  }
}

ModelOutput ModelImpl::forward(const torch::Tensor& images, const torch::Tensor& input_ids,
                               const torch::Tensor& attention_mask,
                               const torch::Tensor& token_type_ids,
                               const torch::Tensor& image_index,
                               const torch::Tensor& patch_padding) {
  if (options.task == Task::retrieval) {
    return forward_retrieval(images, input_ids, attention_mask, token_type_ids, image_index,
                             patch_padding);
  }
  torch::Tensor image_tokens, text_tokens, text_padding, sample_patch_padding = patch_padding;
  if (vision) {
    image_tokens = vision(images, patch_padding);  // [N, 1 + P, Dv]
    if (image_index.defined()) {
      const auto index = image_index.to(image_tokens.device());
      image_tokens = image_tokens.index_select(0, index);
      if (patch_padding.defined()) {
        sample_patch_padding = patch_padding.index_select(0, index.to(patch_padding.device()));
      }
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
  out.image_features = image_tokens;
  out.pooled = fusion
                   ->forward(text_tokens, text_padding, image_tokens, pooled_only_fusion,
                             sample_patch_padding)
                   .pooled;
  if (vqa_head) {
    out.logits = vqa_head(out.pooled);
  } else {
    auto logits = counting_head(out.pooled);
    out.presence = logits.presence;
    out.counts = logits.counts;
  }
  return out;
}

torch::Tensor ModelImpl::itm_logits(const torch::Tensor& image_tokens,
                                    const torch::Tensor& text_tokens,
                                    const torch::Tensor& text_padding) {
  TORCH_CHECK(itm_head, "Model: this retrieval model has no ITM head (train.itm 0)");
  return itm_head(fusion->forward(text_tokens, text_padding, image_tokens, true).pooled);
}

namespace {

// For each row of `similarity` [R, C], one column drawn with probability softmax(row), among
// the columns where `allowed` [R, C] is true: -1 for a row without one.
torch::Tensor draw_negatives(const torch::Tensor& similarity, const torch::Tensor& allowed) {
  auto weights = torch::softmax(similarity.masked_fill(allowed.logical_not(), -1e9), 1) *
                 allowed.to(similarity.dtype());
  const auto has = allowed.any(1);
  weights = torch::where(has.unsqueeze(1), weights, torch::ones_like(weights));
  return torch::where(has, torch::multinomial(weights + 1e-12, 1).squeeze(1),
                      torch::full_like(has, -1, torch::kLong));
}

}  // namespace

namespace {

torch::Tensor unit_rows(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  return F::normalize(x, F::NormalizeFuncOptions().dim(1).eps(1e-12));
}

}  // namespace

torch::Tensor ModelImpl::embed_images(const torch::Tensor& images) {
  TORCH_CHECK(image_projection, "Model: embeddings need a task retrieval model");
  return unit_rows(image_projection(vision(images).select(1, 0)));
}

torch::Tensor ModelImpl::embed_texts(const torch::Tensor& input_ids,
                                     const torch::Tensor& attention_mask,
                                     const torch::Tensor& token_type_ids) {
  TORCH_CHECK(text_projection, "Model: embeddings need a task retrieval model");
  return unit_rows(text_projection(text(input_ids, attention_mask, token_type_ids).select(1, 0)));
}

ModelOutput ModelImpl::forward_retrieval(const torch::Tensor& images,
                                         const torch::Tensor& input_ids,
                                         const torch::Tensor& attention_mask,
                                         const torch::Tensor& token_type_ids,
                                         const torch::Tensor& image_index,
                                         const torch::Tensor& patch_padding) {
  ModelOutput out;
  const torch::Tensor image_tokens = vision(images, patch_padding);  // [N, 1 + P, Dv]
  const torch::Tensor text_tokens = text(input_ids, attention_mask, token_type_ids);
  out.image_embeds = unit_rows(image_projection(image_tokens.select(1, 0)));
  out.text_embeds = unit_rows(text_projection(text_tokens.select(1, 0)));
  // CLIP clamps the scale at 100 (a temperature of 0.01).
  out.logit_scale = logit_scale.clamp(0, std::log(100.0)).exp();
  if (!itm_head) return out;
  if (!is_training()) {
    out.image_tokens = image_tokens;
    out.text_tokens = text_tokens;
    return out;
  }

  // ALBEF's hard negatives: for each image a text, for each text an image, drawn by their
  // contrastive similarity among the batch's pairs that do not match (another image, another
  // text).
  const int64_t b = input_ids.size(0);
  const torch::Tensor index =
      image_index.defined() ? image_index : torch::arange(b, input_ids.options());
  const torch::Tensor paired_tokens = image_tokens.index_select(0, index);  // [B, 1 + P, Dv]
  const torch::Tensor padding = attention_mask.defined() ? attention_mask.eq(0) : torch::Tensor();
  torch::Tensor negative_text, negative_image;
  {
    torch::NoGradGuard no_grad;
    const auto similarity =
        torch::matmul(out.image_embeds.index_select(0, index), out.text_embeds.t()) *
        out.logit_scale;  // [B images, B texts]
    auto same_text = (input_ids.unsqueeze(1) == input_ids.unsqueeze(0)).all(2);
    if (attention_mask.defined()) {
      same_text &= (attention_mask.unsqueeze(1) == attention_mask.unsqueeze(0)).all(2);
    }
    const auto allowed = (index.unsqueeze(1) != index.unsqueeze(0)) & same_text.logical_not();
    negative_text = draw_negatives(similarity, allowed);           // per image row
    negative_image = draw_negatives(similarity.t(), allowed.t());  // per text row
  }
  const auto rows_text = negative_text.ge(0).nonzero().squeeze(1);
  const auto rows_image = negative_image.ge(0).nonzero().squeeze(1);
  if (rows_text.numel() == 0 && rows_image.numel() == 0) return out;
  const auto pick = [](const torch::Tensor& t, const torch::Tensor& rows) {
    return t.defined() ? t.index_select(0, rows) : t;
  };
  // Pairs: (image i, text i); (image of text j's negative, text j); (image i, negative text of i)
  const auto images_all = torch::cat(
      {paired_tokens, paired_tokens.index_select(0, negative_image.index_select(0, rows_image)),
       pick(paired_tokens, rows_text)});
  const auto text_rows = torch::cat(
      {torch::arange(b, index.options()), rows_image, negative_text.index_select(0, rows_text)});
  out.itm_logits = itm_logits(images_all, text_tokens.index_select(0, text_rows),
                              padding.defined() ? padding.index_select(0, text_rows) : padding);
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
