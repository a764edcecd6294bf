#include "xmodal/train/train_step.h"

#include <cmath>
#include <csignal>
#include <optional>

#include "xmodal/models/precision.h"
#include "xmodal/train/optimizer.h"
#include "xmodal/train/signals.h"

namespace xmodal::train {
namespace {

// The communicator behind the tasks' interface for losses over the global batch.
class CommunicatorCollective : public tasks::Collective {
 public:
  explicit CommunicatorCollective(Communicator& comm) : comm_(comm) {}
  int rank() const override { return comm_.rank(); }
  int world_size() const override { return comm_.world_size(); }
  torch::Tensor all_gather(const torch::Tensor& tensor) override {
    const auto device = tensor.device();
    return comm_.all_gather(tensor).to(device);
  }

 private:
  Communicator& comm_;
};

}  // namespace

bool StepOutcome::finite() const { return std::isfinite(loss) && std::isfinite(grad_norm); }

TrainStep::TrainStep(models::Model model, std::vector<torch::Tensor> params,
                     const config::Config& config, const c10::Device& device, Communicator* comm,
                     models::Model teacher)
    : model_(std::move(model)),
      teacher_(std::move(teacher)),
      tc_(config.train),
      device_(device),
      comm_(comm),
      task_(tasks::task(config.task)),
      weights_{config.train.loss.presence_weight, config.train.loss.count_weight, config.train.itm,
               config.train.loss.label_smoothing},
      params_(std::move(params)),
      collective_(comm ? std::make_unique<CommunicatorCollective>(*comm) : nullptr) {}

torch::Tensor TrainStep::loss_sum(const models::ModelOutput& out, const data::Batch& b,
                                  const models::ModelOutput* teacher) const {
  torch::Tensor total = task_.loss(out, b, device_, weights_, collective_.get()).total;
  if (teacher) {
    total = total + task_.distill_loss(out, *teacher, tc_.distill.temperature) * tc_.distill.weight;
    if (tc_.distill.features > 0) {
      total = total + models::distill_features(out.image_features, teacher->image_features) *
                          tc_.distill.features;
    }
  }
  if (out.aux_presence.defined() && b.aux_counts.defined()) {
    const auto aux =
        models::counting_loss(out.aux_presence, out.aux_counts, b.aux_counts.to(device_), {}, {});
    total = total + aux.total * tc_.aux.counting;
  }
  if (out.aux_dense.defined() && b.aux_dense.defined()) {
    total = total + models::dense_loss(out.aux_dense, b.aux_dense.to(device_)) * tc_.aux.dense;
  }
  if (out.aux_locate.defined() && b.aux_locate.defined()) {
    total = total + models::locate_loss(out.aux_locate, b.aux_locate.to(device_)) * tc_.aux.locate;
  }
  return total;
}

StepOutcome TrainStep::run(const std::vector<data::Batch>& group) {
  StepOutcome o;
  for (const auto& b : group) o.samples += b.size();
  if (comm_) {  // the loss is a mean over the samples of all processes
    auto n = torch::tensor({static_cast<double>(o.samples)}, torch::kFloat64);
    comm_->all_reduce_sum(n);
    o.samples = static_cast<int64_t>(n.item<double>());
  }
  double loss_sum_all = 0;
  for (const auto& b : group) {
    models::AutocastGuard autocast(tc_.precision, device_);
    const auto images = b.images.to(device_), ids = b.input_ids.to(device_),
               mask = b.attention_mask.to(device_), types = b.token_type_ids.to(device_),
               index = b.image_index.to(device_);
    const auto out = model_->forward(images, ids, mask, types, index);
    std::optional<models::ModelOutput> teacher;
    if (!teacher_.is_empty()) {
      torch::NoGradGuard no_grad;
      teacher = teacher_->forward(images, ids, mask, types, index);
    }
    const torch::Tensor sum = loss_sum(out, b, teacher ? &*teacher : nullptr);
    const double value = sum.item<double>();
    if (!std::isfinite(value)) {
      loss_sum_all = value;
      break;
    }
    autocast.reset();
    (sum / static_cast<double>(o.samples)).backward();
    loss_sum_all += value;
  }
  if (comm_) {
    // The loss of all processes (a non-finite one anywhere stops them all at the same step),
    // whether any process was asked to stop, then the gradients.
    const int own = StopSignals::pending();
    auto shared = torch::tensor({loss_sum_all, own != 0 ? 1.0 : 0.0}, torch::kFloat64);
    comm_->all_reduce_sum(shared);
    loss_sum_all = shared[0].item<double>();
    if (shared[1].item<double>() > 0) o.signal = own != 0 ? own : SIGTERM;
    if (std::isfinite(loss_sum_all)) comm_->all_reduce_gradients(params_);
  }
  o.loss = loss_sum_all / static_cast<double>(o.samples);
  o.grad_norm = std::isfinite(o.loss) ? clip_grad_norm(params_, tc_.grad_clip) : o.loss;
  return o;
}

}  // namespace xmodal::train
