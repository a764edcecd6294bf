// What the retrieval commands share: a retrieval checkpoint's identity, its text embeddings
// (batched), the zero-shot classifier texts built from prompt templates, and one image file
// through the evaluation transform.
#pragma once

#include <torch/torch.h>

#include <string>
#include <vector>

#include "xmodal/checkpoint/artifacts.h"

namespace xmodal::infer {

/// Whether `m` embeds images and texts in a shared space (a task retrieval checkpoint).
bool has_embeddings(const checkpoint::LoadedModel& m);

/// Throws an OptionError unless `m` is a task retrieval checkpoint; `what` names the call in
/// OptionError's terms ("index", "predict {labels}").
void require_retrieval(const checkpoint::LoadedModel& m, const std::string& what);

/// The identity of a checkpoint's weights, "crc32 HEX, N bytes" of its model.safetensors (as
/// its state.json lists and loading verifies): equal weights, equal identity.
std::string checkpoint_identity(const std::string& checkpoint_dir);

/// L2-normalised text embeddings [T, E] of `texts`, in batches, without gradients.
torch::Tensor embed_texts(checkpoint::LoadedModel& m, const std::vector<std::string>& texts,
                          const c10::Device& device, int batch_size = 256);

/// A zero-shot classifier: per class, the mean of the embeddings of its prompts (each template
/// with {} replaced by the class name), L2-normalised again (CLIP's prompt ensembling).
/// [classes, E].
torch::Tensor class_embeddings(checkpoint::LoadedModel& m, const std::vector<std::string>& classes,
                               const std::vector<std::string>& templates,
                               const c10::Device& device);

/// One image file through the evaluation transform of `m`'s config: [3, S, S]. Throws
/// std::runtime_error naming the file when it cannot be read.
torch::Tensor image_tensor(const checkpoint::LoadedModel& m, const std::string& path);

}  // namespace xmodal::infer
