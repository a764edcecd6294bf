// The tasks by config name: the one place a task is registered (docs/design.md "How to add a
// task").
#include <stdexcept>

#include "xmodal/tasks/task.h"

namespace xmodal::tasks {

// Each task's file defines its maker; a new task adds one line here and one in kRegistry.
std::unique_ptr<Task> make_vqa_task();
std::unique_ptr<Task> make_counting_task();
std::unique_ptr<Task> make_classify_task();
std::unique_ptr<Task> make_retrieval_task();
std::unique_ptr<Task> make_caption_task();

namespace {

struct Registered {
  config::Task id;
  std::unique_ptr<Task> (*make)();
};

const Registered kRegistry[] = {
    {config::Task::vqa, make_vqa_task},           {config::Task::counting, make_counting_task},
    {config::Task::classify, make_classify_task}, {config::Task::retrieval, make_retrieval_task},
    {config::Task::caption, make_caption_task},
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

}  // namespace xmodal::tasks
