#include "xmodal/tasks/task.h"

#include <cmath>
#include <stdexcept>

#include "xmodal/core/logging.h"

namespace xmodal::tasks {

data::TaskData load_split(const config::Config& c, const std::string& split,
                          const std::vector<std::string>* classes) {
  data::BadInputPolicy policy;
  policy.skip = c.data.on_bad_sample == config::BadSample::skip;
  data::TaskData data = task(c.task).read_split(c, split, classes, policy);
  data.task = c.task;
  data.split = split;
  data.skipped = policy.skipped;
  if (policy.skipped > 0) {
    log::warn("[data] {} split: skipped {} bad record(s) (on_bad_sample: skip); first: {}", split,
              policy.skipped, policy.first_problem);
  }
  return data;
}

models::Model build_model(const config::Config& config, const models::DataSizes& sizes) {
  return models::build_model(config, sizes, task(config.task).head(config, sizes));
}

std::vector<ClassScore> top_k(const torch::Tensor& probabilities, int64_t k,
                              const std::vector<std::string>& classes) {
  const auto probs = probabilities.to(torch::kCPU);
  const auto [values, indices] = probs.topk(std::min<int64_t>(k, probs.size(0)));
  std::vector<ClassScore> out;
  for (int64_t i = 0; i < values.size(0); ++i) {
    ClassScore c;
    c.name = classes.at(static_cast<size_t>(indices[i].item<int64_t>()));
    c.probability = values[i].item<float>();
    out.push_back(std::move(c));
  }
  return out;
}

nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace xmodal::tasks
