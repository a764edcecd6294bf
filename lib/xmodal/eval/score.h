// `xmodal score`: the official VQA accuracy of any results file in the submission format
// [{"question_id": int, "answer": str}, ...] against published annotations, with
// vqa_accuracy() (the same code path as `xmodal eval`). Like the official tool it refuses a
// results file whose question ids differ from the annotations' (naming an offending id) and
// reports accuracies x100 rounded to 2 decimals, overall, per answer type and per question type.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "xmodal/config/config.h"

namespace xmodal::eval {

struct ScoreResult {
  double overall = 0;  ///< percent, rounded to 2 decimals
  std::map<std::string, double> per_answer_type;
  std::map<std::string, double> per_question_type;
  int64_t questions = 0;
  int64_t duplicate_results = 0;  ///< results given twice for a question (the last one counts)
};

/// `questions_path` may be "" (the annotations carry the question and answer types); when
/// given, its question ids must match the annotations'. Throws std::runtime_error naming the
/// file and the question id.
ScoreResult score_vqa(const std::string& results_path, const std::string& annotations_path,
                      const std::string& questions_path = "",
                      config::VqaProtocol protocol = config::VqaProtocol::official);

/// The official tool's printout, and JSON with its key names (overall, perAnswerType,
/// perQuestionType).
std::string format_score(const ScoreResult& result);
std::string score_json(const ScoreResult& result);

}  // namespace xmodal::eval
