#include "xmodal/eval/evaluator.h"

#include <chrono>

namespace xmodal::eval {

EvalResult evaluate(models::Model& model, const data::TaskData& data, data::Loader& loader,
                    const std::vector<std::string>& classes, const models::LossWeights& weights,
                    const c10::Device& device, config::VqaProtocol protocol, int rerank_k) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const tasks::Task& task = tasks::task(data.task);

  EvalResult r;
  r.predictions = task.evaluation(data, classes, protocol);
  double loss_sum = 0;
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto out = model->forward(
        batch->images.to(device), batch->input_ids.to(device), batch->attention_mask.to(device),
        batch->token_type_ids.to(device), batch->image_index.to(device));
    if (data.has_targets) loss_sum += task.loss(out, *batch, device, weights).total.item<double>();
    r.predictions->add(out, *batch);
  }
  if (rerank_k > 0) r.predictions->rerank(*model, device, rerank_k);
  r.examples = r.predictions->rows();
  r.skipped = loader.skipped();
  r.metrics = r.predictions->metrics();
  if (data.has_targets) r.metrics["loss"] = r.examples > 0 ? loss_sum / r.examples : 0.0;
  if (was_training) model->train();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace xmodal::eval
