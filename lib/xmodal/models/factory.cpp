#include "xmodal/models/factory.h"

#include <stdexcept>

namespace xmodal::models {

ModelOptions model_options(const config::Config& c, const DataSizes& sizes,
                           const HeadChoice& head) {
  if (sizes.vocab_size <= 0) {
    throw std::invalid_argument("model: vocabulary size must be positive, got " +
                                std::to_string(sizes.vocab_size));
  }
  if (sizes.num_classes <= 0 && head.needs_classes) {
    throw std::invalid_argument("model: number of answers/categories must be positive, got " +
                                std::to_string(sizes.num_classes));
  }
  const auto& m = c.model;
  FusionMode mode = FusionMode::concat;
  switch (head.mode.value_or(m.fusion.mode)) {
    case config::FusionMode::concat:
      mode = FusionMode::concat;
      break;
    case config::FusionMode::late:
      mode = FusionMode::late;
      break;
    case config::FusionMode::image_only:
      mode = FusionMode::image_only;
      break;
    case config::FusionMode::text_only:
      mode = FusionMode::text_only;
      break;
  }
  ModelOptions options(FusionOptions(mode, m.text.hidden, m.vision.hidden, m.fusion.hidden,
                                     m.fusion.layers, m.fusion.heads, m.fusion.mlp_dim)
                           .dropout(m.fusion.dropout),
                       m.head.hidden);
  options.max_count = m.head.max_count;
  options.make_head = head.make;
  options.build_fusion = head.build_fusion;
  options.aux_counting_classes = c.train.aux.counting > 0 ? sizes.aux_classes : 0;
  options.aux_dense_classes = c.train.aux.dense > 0 ? sizes.aux_classes : 0;
  options.aux_locate_classes = c.train.aux.locate > 0 ? sizes.aux_classes : 0;
  if (uses_image(mode)) options.vision = vision_options(c);
  if (uses_text(mode)) options.text = text_options(c, sizes.vocab_size);
  return options;
}

ViTOptions vision_options(const config::Config& c) {
  const auto& v = c.model.vision;
  return ViTOptions(c.data.image_size, v.patch_size, v.hidden, v.layers, v.heads, v.mlp_dim)
      .dropout(v.dropout)
      .conv_stem(v.stem == config::Stem::conv)
      .stem_width(v.stem_width)
      .sincos_positions(v.positions == config::Positions::sincos)
      .eps(v.layer_norm_eps > 0 ? v.layer_norm_eps : 1e-6);
}

BertOptions text_options(const config::Config& c, int64_t tokenizer_vocab) {
  const auto& t = c.model.text;
  const int64_t vocab = t.vocab_size > 0 ? t.vocab_size : tokenizer_vocab;
  if (vocab <= 0) {
    throw std::invalid_argument("model: vocabulary size must be positive, got " +
                                std::to_string(vocab));
  }
  return BertOptions(vocab, t.hidden, t.layers, t.heads, t.intermediate)
      .max_position(t.max_position)
      .eps(t.layer_norm_eps > 0 ? t.layer_norm_eps : 1e-12)
      .dropout(t.dropout)
      .pooler(false);  // the fusion pools; a BERT pooler would get no gradient
}

Model build_model(const config::Config& config, const DataSizes& sizes, const HeadChoice& head) {
  return Model(model_options(config, sizes, head));
}

}  // namespace xmodal::models
