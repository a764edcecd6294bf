// The encoders' starting weights and their frozen first steps: model.{vision,text}.pretrained
// (a Hugging Face folder), model.{vision,text}.init_from (an earlier run's checkpoint) and
// model.{vision,text}.freeze_steps.
#pragma once

#include <cstdint>

#include "xmodal/config/config.h"
#include "xmodal/models/model.h"

namespace xmodal::train {

/// Loads each named encoder (pretrained first, then init_from) and logs what was loaded,
/// interpolated, missing or unexpected; a key naming an encoder the model lacks is warned about
/// and ignored. A mistake in the config (wrong shapes, a folder that is not a model) throws
/// std::invalid_argument naming the key; unreadable files std::runtime_error.
void init_encoders(models::ModelImpl& model, const config::Config& config);

/// A loaded encoder stays fixed for its first freeze_steps steps (all of them for -1, a locked
/// tower): before optimizer step `step` + 1 its parameters stop (or start again) requiring
/// gradients. With model.vision.freeze_stem the convolutional stem never trains: its parameters
/// require no gradient and its BatchNorm layers run in eval mode (their loaded statistics).
void freeze_encoders(models::ModelImpl& model, const config::ModelConfig& config, int64_t step);

}  // namespace xmodal::train
