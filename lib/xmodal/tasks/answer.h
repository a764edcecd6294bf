// What a task answers for one input, as a type (tasks/task.h's Task::answer). Light: no torch.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace xmodal::tasks {

/// One class of an answer and what the task knows of it.
struct ClassScore {
  std::string name;
  double probability = 0;            ///< NaN when the model's outputs are not finite
  std::optional<int64_t> count;      ///< counting: the most probable count
  std::optional<double> similarity;  ///< zero-shot labels: the cosine similarity
  std::optional<double> score;       ///< captions: the beam's score (log p / length^length_penalty)
};

/// What a model answers for one input: the typed result that `xmodal predict`, the server and
/// explain share (infer/json.h writes it; no layer searches its text).
struct Answer {
  /// What `classes` holds: vqa's top-k answers, counting's categories (every one, in order),
  /// classify's or a retrieval model's zero-shot labels (best first), a caption model's beam of
  /// captions (best first; `probability` is the caption's); none: no classes.
  enum class Kind { none, answers, categories, labels, captions };
  Kind kind = Kind::none;
  std::vector<ClassScore> classes;
  std::optional<double> similarity;  ///< retrieval: cosine similarity of the image and the text
};

}  // namespace xmodal::tasks
