#include "xmodal/models/factory.h"

#include <stdexcept>

namespace xmodal::models {

ModelOptions model_options(const config::Config& c, const DataSizes& sizes) {
  if (sizes.vocab_size <= 0) {
    throw std::invalid_argument("model: vocabulary size must be positive, got " +
                                std::to_string(sizes.vocab_size));
  }
  if (sizes.num_classes <= 0) {
    throw std::invalid_argument("model: number of answers/categories must be positive, got " +
                                std::to_string(sizes.num_classes));
  }
  const auto& m = c.model;
  FusionMode mode = FusionMode::concat;
  switch (m.fusion.mode) {
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
  if (c.task == config::Task::classify) mode = FusionMode::image_only;  // the ViT alone
  const Task task = c.task == config::Task::vqa        ? Task::vqa
                    : c.task == config::Task::counting ? Task::counting
                                                       : Task::classify;
  ModelOptions options(task,
                       FusionOptions(mode, m.text.hidden, m.vision.hidden, m.fusion.hidden,
                                     m.fusion.layers, m.fusion.heads, m.fusion.mlp_dim)
                           .dropout(m.vision.dropout),
                       m.head.hidden, sizes.num_classes);
  options.max_count = m.head.max_count;
  options.aux_counting_classes = c.train.aux.counting > 0 ? sizes.aux_classes : 0;
  options.aux_dense_classes = c.train.aux.dense > 0 ? sizes.aux_classes : 0;
  if (uses_image(mode)) {
    options.vision = ViTOptions(c.data.image_size, m.vision.patch_size, m.vision.hidden,
                                m.vision.layers, m.vision.heads, m.vision.mlp_dim)
                         .dropout(m.vision.dropout)
                         .conv_stem(m.vision.stem == config::Stem::conv)
                         .stem_width(m.vision.stem_width);
  }
  if (uses_text(mode)) {
    options.text = BertOptions(sizes.vocab_size, m.text.hidden, m.text.layers, m.text.heads,
                               m.text.intermediate)
                       .max_position(m.text.max_position)
                       .dropout(m.text.dropout)
                       .pooler(false);  // the fusion pools; a BERT pooler would get no gradient
  }
  return options;
}

Model build_model(const config::Config& config, const DataSizes& sizes) {
  return Model(model_options(config, sizes));
}

}  // namespace xmodal::models
