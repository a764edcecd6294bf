// The whole image+text model: ViT + BERT -> Fusion -> the task's head (docs/design.md sections
// 2 and 10). The head comes from the task (ModelOptions::make_head); the model does not know
// which task it serves.
//
// Parameter names: vision.* (ViT), text.* (BERT), fusion.*, and the head's (head.*; retrieval:
// image_projection.*, text_projection.*, logit_scale). The encoder a fusion mode does not use
// is not built (image_only has no text.*, text_only no vision.*).
#pragma once

#include <torch/nn.h>

#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>

#include "xmodal/models/bert.h"
#include "xmodal/models/fusion.h"
#include "xmodal/models/heads.h"
#include "xmodal/models/linear.h"
#include "xmodal/models/vit.h"

namespace xmodal::models {

class ModelImpl;
struct ModelOutput;

/// What the encoders made of a batch, for a task's head.
struct Encoded {
  /// The image encoder's tokens of the batch's distinct images [N, 1 + P, Dv] (after its final
  /// norm), or undefined without an image encoder; image_index [B] (undefined: N == B) gives
  /// each sample's image; patch_padding [N, P] bool or undefined.
  torch::Tensor image_tokens, image_index, patch_padding;
  /// The text encoder's tokens [B, L, Dt] and their padding [B, L] bool (true = padding), or
  /// undefined; the input ids and mask as given (retrieval's hard negatives compare texts).
  torch::Tensor text_tokens, text_padding, input_ids, attention_mask;

  /// Each sample's image tokens [B, 1 + P, Dv] (selected once) and patch padding [B, P] (or
  /// undefined).
  torch::Tensor sample_image_tokens() const;
  torch::Tensor sample_patch_padding() const;

 private:
  mutable torch::Tensor sample_image_tokens_;
};

/// A task's part of the model (tasks/ make it: Task::make_head): the modules it adds, registered
/// on the model under the names its checkpoints use ("head", retrieval's "image_projection",
/// ...), and what it computes from the encoders' tokens. The model composes the encoders, the
/// fusion (when the head reads it) and the head, and never asks which task it serves.
class TaskHead {
 public:
  /// Made (ModelOptions::make_head) after the model's encoders and before its fusion; modules
  /// made here are initialised before the fusion's, modules made in attach() after them.
  virtual ~TaskHead() = default;
  /// Registers the head's modules and parameters on `model` (its encoders and fusion exist).
  virtual void attach(ModelImpl& model) = 0;
  /// The task's outputs of a batch into `out`.
  virtual void forward(ModelImpl& model, const Encoded& in, ModelOutput& out) = 0;
};

/// The widths a head is built for.
struct HeadSizes {
  int64_t vision = 0;  ///< image encoder tokens (0: none)
  int64_t text = 0;    ///< text encoder tokens (0: none)
  int64_t fusion = 0;  ///< the fusion's pooled output (0: no fusion)
};

struct ModelOptions {
  ModelOptions(FusionOptions fusion, int64_t head_hidden)
      : fusion(std::move(fusion)), head_hidden(head_hidden) {}
  /// Image encoder; must be set unless fusion.mode is text_only.
  std::optional<ViTOptions> vision;
  /// Text encoder; must be set unless fusion.mode is image_only.
  std::optional<BertOptions> text;
  FusionOptions fusion;
  /// Whether the model builds the fusion (a head that reads the encoders alone: no).
  bool build_fusion = true;
  /// The task's head for the model's widths; called by every reset().
  std::function<std::shared_ptr<TaskHead>(const HeadSizes&)> make_head;
  /// Hidden width of the auxiliary heads' MLP (model.head.hidden).
  int64_t head_hidden;
  /// The auxiliary counting head's count classes are 0..max_count.
  int64_t max_count = 10;
  /// Categories of the auxiliary counting head on the image tokens (0 = no such head).
  int64_t aux_counting_classes = 0;
  /// Categories of the auxiliary dense head on each image patch token (0 = no such head).
  int64_t aux_dense_classes = 0;
  /// Categories of the auxiliary locating head on the image [CLS] token (0 = no such head).
  int64_t aux_locate_classes = 0;
};

struct ModelOutput {
  /// The fusion's pooled [CLS] [B, fusion.hidden] (classify: the image encoder's), where the
  /// task's head computes one.
  torch::Tensor pooled;
  torch::Tensor aux_presence;  ///< auxiliary counting head (if any): [B, C']
  torch::Tensor aux_counts;    ///< auxiliary counting head (if any): [B, C', max_count + 1]
  torch::Tensor aux_dense;     ///< auxiliary dense head (if any): [B, P, C'] logits per patch
  /// auxiliary locating head (if any): [B, 2, C'] logits of the leftmost and rightmost object
  torch::Tensor aux_locate;
  /// The image encoder's tokens of each sample [B, 1 + P, Dv] (after its final norm), where the
  /// head exposes them for feature distillation (train.distill.features).
  torch::Tensor image_features;
  /// The task head's outputs by the names its task gives them (tasks/*.cpp, and
  /// models/dual_encoder.h for retrieval's): the model does not know what they are.
  std::map<std::string, torch::Tensor> outputs;

  /// The head's output `name`; throws std::logic_error naming it when the head made none.
  const torch::Tensor& at(const std::string& name) const;
  /// The head's output `name`, or an undefined tensor.
  torch::Tensor get(const std::string& name) const;
};

class ModelImpl : public torch::nn::Cloneable<ModelImpl> {
 public:
  explicit ModelImpl(const ModelOptions& options);
  void reset() override;

  /// images [B, 3, H, W] f32; input_ids, attention_mask, token_type_ids [B, L] int64 (mask and
  /// types may be undefined). The input a fusion mode does not use may be undefined.
  /// image_index [B] int64, when given: images holds N distinct images [N, 3, H, W] and sample b
  /// uses images[image_index[b]] (each image is encoded once however many samples share it).
  /// patch_padding [N, P] bool (true = hidden: no token of the encoders or the fusion attends
  /// to that patch, the masked input of explanations) or undefined.
  ModelOutput forward(const torch::Tensor& images, const torch::Tensor& input_ids,
                      const torch::Tensor& attention_mask = {},
                      const torch::Tensor& token_type_ids = {},
                      const torch::Tensor& image_index = {},
                      const torch::Tensor& patch_padding = {});

  /// The fusion's pooled [CLS] of each sample [B, fusion.hidden] (pooled_only_fusion decides
  /// whether its last layer computes the other tokens too).
  torch::Tensor fuse(const Encoded& in);

  /// The task's head (tasks/ reach their own through it: models/dual_encoder.h).
  TaskHead& head() { return *head_; }
  const TaskHead& head() const { return *head_; }
  /// Registers a head's module or parameter on the model (TaskHead::attach).
  template <typename M>
  M add_module(const std::string& name, M module) {
    return register_module(name, std::move(module));
  }
  torch::Tensor add_parameter(const std::string& name, const torch::Tensor& value) {
    return register_parameter(name, value);
  }

  ModelOptions options;
  /// The heads read the fusion's pooled [CLS] alone, so its last layer computes that row only
  /// (Fusion::forward's pooled_only). false computes every token (for comparisons).
  bool pooled_only_fusion = true;
  /// Whether forward() runs the text encoder over the whole input before the head (bidirectional
  /// attention). A head that encodes the text itself (captioning: left to right, with caches)
  /// sets it false in attach(); Encoded::text_tokens is then undefined.
  bool encode_text = true;
  /// The type forward() computes its products in: kFloat, or kBFloat16 / kHalf under LibTorch's
  /// autocast (the inference commands' eval.precision; infer::Session sets it). Its floating
  /// outputs are float32 either way. The trainer applies train.precision around forward itself.
  c10::ScalarType compute_dtype = c10::kFloat;
  ViT vision = nullptr;
  Bert text = nullptr;
  Fusion fusion = nullptr;              // not built for a head that reads the encoders alone
  CountingHead aux_counting = nullptr;  // on the mean of the image patch tokens, if asked for
  Linear aux_dense = nullptr;           // on each image patch token, if asked for
  Linear aux_locate = nullptr;          // on the image [CLS] token, if asked for

 private:
  /// forward() in the autocast state the caller set.
  ModelOutput compute(const torch::Tensor& images, const torch::Tensor& input_ids,
                      const torch::Tensor& attention_mask, const torch::Tensor& token_type_ids,
                      const torch::Tensor& image_index, const torch::Tensor& patch_padding);

  std::shared_ptr<TaskHead> head_;
};
TORCH_MODULE(Model);

/// Total number of elements of the parameters of `module`.
int64_t count_parameters(const torch::nn::Module& module);

/// The model tree, one line per component with its parameter count:
///   vision  ViT  2.69M
///     patch_embedding  Conv2d  147.6K ...
std::string describe_model(const torch::nn::Module& module, int max_depth = 2);

}  // namespace xmodal::models
