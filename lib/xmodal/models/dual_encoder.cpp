#include "xmodal/models/dual_encoder.h"

#include <cmath>

namespace xmodal::models {
namespace {

torch::Tensor unit_rows(const torch::Tensor& x) {
  namespace F = torch::nn::functional;
  return F::normalize(x, F::NormalizeFuncOptions().dim(1).eps(1e-12));
}

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

DualEncoderImpl::DualEncoderImpl(const HeadSizes& sizes, int64_t embed_dim, bool itm) {
  TORCH_CHECK(sizes.vision > 0 && sizes.text > 0, "Model: task retrieval needs both encoders");
  image_projection = Linear(torch::nn::LinearOptions(sizes.vision, embed_dim).bias(false));
  text_projection = Linear(torch::nn::LinearOptions(sizes.text, embed_dim).bias(false));
  // CLIP's initialisation: a temperature of 0.07.
  logit_scale = torch::full({}, std::log(1 / 0.07));
  TORCH_CHECK(!itm || sizes.fusion > 0, "Model: the ITM head needs the fusion");
  itm_ = itm;
  fusion_dim_ = sizes.fusion;
}

void DualEncoderImpl::attach(ModelImpl& model) {
  image_projection = model.add_module("image_projection", image_projection);
  text_projection = model.add_module("text_projection", text_projection);
  logit_scale = model.add_parameter("logit_scale", logit_scale);
  // made after the fusion (its initialisation follows the fusion's)
  if (itm_) itm_head = model.add_module("head", Linear(fusion_dim_, 2));
}

torch::Tensor DualEncoderImpl::embed_image_tokens(const torch::Tensor& image_tokens) {
  return unit_rows(image_projection(image_tokens.select(1, 0)));
}

torch::Tensor DualEncoderImpl::embed_text_tokens(const torch::Tensor& text_tokens) {
  return unit_rows(text_projection(text_tokens.select(1, 0)));
}

torch::Tensor DualEncoderImpl::itm_logits(ModelImpl& model, const torch::Tensor& image_tokens,
                                          const torch::Tensor& text_tokens,
                                          const torch::Tensor& text_padding) {
  TORCH_CHECK(itm_head, "Model: this retrieval model has no ITM head (train.itm 0)");
  return itm_head(model.fusion->forward(text_tokens, text_padding, image_tokens, true).pooled);
}

void DualEncoderImpl::forward(ModelImpl& model, const Encoded& in, ModelOutput& out) {
  const torch::Tensor& image_tokens = in.image_tokens;  // [N, 1 + P, Dv], the distinct images
  const torch::Tensor& text_tokens = in.text_tokens;
  auto& o = out.outputs;
  o[dual_outputs::image_embeds] = embed_image_tokens(image_tokens);
  o[dual_outputs::text_embeds] = embed_text_tokens(text_tokens);
  // CLIP clamps the scale at 100 (a temperature of 0.01).
  o[dual_outputs::logit_scale] = logit_scale.clamp(0, std::log(100.0)).exp();
  if (!itm_head) return;
  if (!model.is_training()) {
    o[dual_outputs::image_tokens] = image_tokens;
    o[dual_outputs::text_tokens] = text_tokens;
    return;
  }

  // ALBEF's hard negatives: for each image a text, for each text an image, drawn by their
  // contrastive similarity among the batch's pairs that do not match (another image, another
  // text).
  const torch::Tensor& input_ids = in.input_ids;
  const torch::Tensor& attention_mask = in.attention_mask;
  const int64_t b = input_ids.size(0);
  const torch::Tensor index =
      in.image_index.defined() ? in.image_index : torch::arange(b, input_ids.options());
  const torch::Tensor paired_tokens = image_tokens.index_select(0, index);  // [B, 1 + P, Dv]
  const torch::Tensor padding = attention_mask.defined() ? attention_mask.eq(0) : torch::Tensor();
  torch::Tensor negative_text, negative_image;
  {
    torch::NoGradGuard no_grad;
    const auto similarity = torch::matmul(o[dual_outputs::image_embeds].index_select(0, index),
                                          o[dual_outputs::text_embeds].t()) *
                            o[dual_outputs::logit_scale];  // [B images, B texts]
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
  if (rows_text.numel() == 0 && rows_image.numel() == 0) return;
  const auto pick = [](const torch::Tensor& t, const torch::Tensor& rows) {
    return t.defined() ? t.index_select(0, rows) : t;
  };
  // Pairs: (image i, text i); (image of text j's negative, text j); (image i, negative text of i)
  const auto images_all = torch::cat(
      {paired_tokens, paired_tokens.index_select(0, negative_image.index_select(0, rows_image)),
       pick(paired_tokens, rows_text)});
  const auto text_rows = torch::cat(
      {torch::arange(b, index.options()), rows_image, negative_text.index_select(0, rows_text)});
  o[dual_outputs::itm_logits] =
      itm_logits(model, images_all, text_tokens.index_select(0, text_rows),
                 padding.defined() ? padding.index_select(0, text_rows) : padding);
}

DualEncoderImpl* dual_encoder(ModelImpl& model) {
  return dynamic_cast<DualEncoderImpl*>(&model.head());
}

const DualEncoderImpl* dual_encoder(const ModelImpl& model) {
  return dynamic_cast<const DualEncoderImpl*>(&model.head());
}

namespace {

DualEncoderImpl& dual(ModelImpl& model) {
  auto* d = dual_encoder(model);
  TORCH_CHECK(d != nullptr, "Model: embeddings need a task retrieval model");
  return *d;
}

}  // namespace

torch::Tensor embed_images(ModelImpl& model, const torch::Tensor& images) {
  return dual(model).embed_image_tokens(model.vision(images));
}

torch::Tensor embed_texts(ModelImpl& model, const torch::Tensor& input_ids,
                          const torch::Tensor& attention_mask,
                          const torch::Tensor& token_type_ids) {
  return dual(model).embed_text_tokens(model.text(input_ids, attention_mask, token_type_ids));
}

torch::Tensor itm_logits(ModelImpl& model, const torch::Tensor& image_tokens,
                         const torch::Tensor& text_tokens, const torch::Tensor& text_padding) {
  return dual(model).itm_logits(model, image_tokens, text_tokens, text_padding);
}

}  // namespace xmodal::models
