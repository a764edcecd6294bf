#include "xmodal/tasks/task.h"

#include <cmath>
#include <stdexcept>

namespace xmodal::tasks {

// Each task's file defines its maker; a new task adds one line here and one in kRegistry.
std::unique_ptr<Task> make_vqa_task();
std::unique_ptr<Task> make_counting_task();
std::unique_ptr<Task> make_classify_task();
std::unique_ptr<Task> make_retrieval_task();

namespace {

struct Registered {
  config::Task id;
  std::unique_ptr<Task> (*make)();
};

const Registered kRegistry[] = {
    {config::Task::vqa, make_vqa_task},
    {config::Task::counting, make_counting_task},
    {config::Task::classify, make_classify_task},
    {config::Task::retrieval, make_retrieval_task},
};

}  // namespace

const Task& task(config::Task id) {
  // Built once, on first use, and never destroyed (tasks hold no state).
  static const auto* const tasks = [] {
    auto* all = new std::vector<std::unique_ptr<Task>>;
    for (const auto& r : kRegistry) all->push_back(r.make());
    return all;
  }();
  for (const auto& t : *tasks) {
    if (t->id() == id) return *t;
  }
  throw std::invalid_argument("task " + config::to_string(id) + " is not registered");
}

nlohmann::json top_k(const torch::Tensor& probabilities, int64_t k,
                     const std::vector<std::string>& classes, const char* key) {
  const auto probs = probabilities.to(torch::kCPU);
  const auto [values, indices] = probs.topk(std::min<int64_t>(k, probs.size(0)));
  nlohmann::json out = nlohmann::json::array();
  for (int64_t i = 0; i < values.size(0); ++i) {
    out.push_back(
        {{key, classes.at(indices[i].item<int64_t>())}, {"probability", values[i].item<float>()}});
  }
  return out;
}

nlohmann::json finite_or_null(double v) {
  return std::isfinite(v) ? nlohmann::json(v) : nlohmann::json(nullptr);
}

}  // namespace xmodal::tasks
