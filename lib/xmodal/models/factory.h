// Config -> model. The only place where config structs become model Options.
#pragma once

#include <functional>
#include <memory>
#include <optional>

#include "xmodal/config/config.h"
#include "xmodal/models/model.h"

namespace xmodal::models {

/// What the data fixes about the model: the tokenizer's vocabulary and the number of answers
/// (vqa) or categories (counting).
struct DataSizes {
  int64_t vocab_size = 0;
  int64_t num_classes = 0;
  /// categories of the auxiliary heads (train.aux.*); 0 = none
  int64_t aux_classes = 0;
};

/// What a task decides about the model (tasks/ fill it: Task::head; the factory never names a
/// task).
struct HeadChoice {
  /// The head for the model's widths (ModelOptions::make_head).
  std::function<std::shared_ptr<TaskHead>(const HeadSizes&)> make;
  /// A fusion mode the task needs whatever model.fusion.mode says (classify: the ViT alone).
  std::optional<config::FusionMode> mode;
  /// Whether the model builds the fusion transformer (a head that reads the encoders alone:
  /// no).
  bool build_fusion = true;
  /// Whether the data must name classes (answers, categories, labels).
  bool needs_classes = true;
};

/// The Options of the whole model for `config`, the data's sizes and the task's head. Throws
/// std::invalid_argument for sizes that do not fit (e.g. a zero vocabulary).
ModelOptions model_options(const config::Config& config, const DataSizes& sizes,
                           const HeadChoice& head);

/// The image encoder's Options (data.image_size, model.vision.*).
ViTOptions vision_options(const config::Config& config);

/// The text encoder's Options: model.text.*, with model.text.vocab_size or else the tokenizer's
/// vocabulary. No pooler (the fusion pools).
BertOptions text_options(const config::Config& config, int64_t tokenizer_vocab);

/// model_options() turned into a model (on the CPU; move it with ->to(device)). The model of a
/// config's task: tasks::build_model (tasks/task.h).
Model build_model(const config::Config& config, const DataSizes& sizes, const HeadChoice& head);

}  // namespace xmodal::models
