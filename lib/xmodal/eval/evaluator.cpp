#include "xmodal/eval/evaluator.h"

#include <algorithm>
#include <chrono>

namespace xmodal::eval {

EvalResult evaluate(models::Model& model, const data::TaskData& data, data::Loader& loader,
                    const models::LossWeights& weights, const c10::Device& device,
                    config::VqaProtocol protocol) {
  const auto start = std::chrono::steady_clock::now();
  const bool was_training = model->is_training();
  model->eval();
  torch::NoGradGuard no_grad;
  const models::Task task = data.task == config::Task::vqa        ? models::Task::vqa
                            : data.task == config::Task::counting ? models::Task::counting
                                                                  : models::Task::classify;

  EvalResult r;
  double loss_sum = 0;
  std::vector<torch::Tensor> presence, counts, targets, crowd, top5;
  loader.start(0);
  while (auto batch = loader.next()) {
    const auto out = model->forward(
        batch->images.to(device), batch->input_ids.to(device), batch->attention_mask.to(device),
        batch->token_type_ids.to(device), batch->image_index.to(device));
    if (data.has_targets) {
      const torch::Tensor t = batch->targets.to(device);
      const torch::Tensor c = batch->crowd.defined() ? batch->crowd.to(device) : torch::Tensor();
      loss_sum += models::task_loss(task, out, t, c, weights).total.item<double>();
    }
    r.indices.insert(r.indices.end(), batch->indices.begin(), batch->indices.end());
    if (task == models::Task::classify) {
      const auto probs = torch::softmax(out.logits, 1);
      const auto [best, arg] = probs.max(1);
      const auto p = best.to(torch::kCPU).contiguous();
      const auto idx = arg.to(torch::kCPU).contiguous();
      for (int64_t i = 0; i < idx.size(0); ++i) {
        r.answers.push_back(idx[i].item<int64_t>());
        r.confidences.push_back(p[i].item<float>());
      }
      if (data.has_targets) {
        const int64_t k = std::min<int64_t>(5, out.logits.size(1));
        const auto top = std::get<1>(out.logits.topk(k, 1)).to(torch::kCPU);
        top5.push_back(top.eq(batch->targets.unsqueeze(1)).any(1));
        targets.push_back(batch->targets);
      }
    } else if (task == models::Task::vqa) {
      const auto [best, arg] = out.logits.max(1);
      const auto prob = torch::sigmoid(best).to(torch::kCPU).contiguous();
      const auto idx = arg.to(torch::kCPU).contiguous();
      for (int64_t i = 0; i < idx.size(0); ++i) {
        r.answers.push_back(idx[i].item<int64_t>());
        r.confidences.push_back(prob[i].item<float>());
      }
    } else {
      presence.push_back(torch::sigmoid(out.presence).to(torch::kCPU));
      counts.push_back(out.counts.argmax(2).to(torch::kCPU));
      if (data.has_targets) {
        targets.push_back(batch->targets);
        crowd.push_back(batch->crowd.defined()
                            ? batch->crowd
                            : torch::zeros(batch->targets.sizes(), torch::kBool));
      }
    }
  }
  r.examples = static_cast<int64_t>(r.indices.size());
  r.skipped = loader.skipped();

  if (task == models::Task::classify) {
    if (data.has_targets && r.examples > 0) {
      const auto labels = torch::cat(targets);
      const auto predicted = torch::tensor(r.answers, torch::kLong);
      r.metrics["accuracy"] = predicted.eq(labels).to(torch::kDouble).mean().item<double>();
      r.metrics["top5_accuracy"] = torch::cat(top5).to(torch::kDouble).mean().item<double>();
    } else if (data.has_targets) {
      r.metrics["accuracy"] = r.metrics["top5_accuracy"] = 0.0;
    }
  } else if (task == models::Task::vqa) {
    if (data.has_targets) {
      std::vector<std::string> types;
      for (size_t i = 0; i < r.indices.size(); ++i) {
        const auto& e = data.examples.at(static_cast<size_t>(r.indices[i]));
        r.accuracies.push_back(
            vqa_accuracy(data.class_names.at(r.answers[i]), e.answers, protocol));
        types.push_back(e.answer_type);
      }
      r.metrics = vqa_metrics(r.accuracies, types);
    }
  } else {
    const int64_t c = data.num_classes();
    r.presence = presence.empty() ? torch::zeros({0, c}) : torch::cat(presence);
    r.counts = counts.empty() ? torch::zeros({0, c}, torch::kInt64) : torch::cat(counts);
    if (data.has_targets) {
      const auto t = targets.empty() ? torch::zeros({0, c}, torch::kInt64) : torch::cat(targets);
      const auto u = crowd.empty() ? torch::zeros({0, c}, torch::kBool) : torch::cat(crowd);
      auto scores = counting_metrics(r.counts, r.presence, t, u);
      r.metrics = std::move(scores.metrics);
      r.categories = std::move(scores.categories);
    }
  }
  if (data.has_targets) r.metrics["loss"] = r.examples > 0 ? loss_sum / r.examples : 0.0;
  if (was_training) model->train();
  r.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return r;
}

}  // namespace xmodal::eval
