#include "xmodal/eval/score.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <cmath>
#include <set>
#include <stdexcept>
#include <unordered_map>
#include <vector>

#include "xmodal/io/json.h"
#include "xmodal/tasks/metrics.h"

namespace xmodal::eval {
namespace {

double percent2(double sum, size_t n) {
  // round(100 * mean, 2) as the official tool does (its printout uses "%.02f").
  return std::stod(fmt::format("{:.2f}", 100.0 * sum / static_cast<double>(n)));
}

}  // namespace

ScoreResult score_vqa(const std::string& results_path, const std::string& annotations_path,
                      const std::string& questions_path, config::VqaProtocol protocol) {
  // Results: the submission format.
  const auto results = io::JsonFile::load(results_path);
  simdjson::dom::array list;
  if (results.root().get_array().get(list)) {
    results.fail({}, "expected a JSON array of {\"question_id\", \"answer\"} objects");
  }
  ScoreResult out;
  std::unordered_map<int64_t, std::string> answers;
  int64_t i = 0;
  for (simdjson::dom::element r : list) {
    const io::Where where("results", i++);
    const int64_t id = results.integer(r, "question_id", where);
    if (!answers.emplace(id, results.string(r, "answer", where)).second) {
      answers[id] = results.string(r, "answer", where);
      ++out.duplicate_results;
    }
  }

  const auto annotations = io::JsonFile::load(annotations_path);
  const auto anns = annotations.array(annotations.root(), "annotations", {});
  std::vector<double> accuracies;
  std::map<std::string, std::pair<double, size_t>> by_answer_type, by_question_type;
  std::set<int64_t> annotated;
  double total = 0;
  i = 0;
  for (simdjson::dom::element a : anns) {
    const io::Where where("annotations", i++);
    const int64_t id = annotations.integer(a, "question_id", where);
    annotated.insert(id);
    const auto it = answers.find(id);
    if (it == answers.end()) {
      throw std::runtime_error(results_path + ": no result for question_id " + std::to_string(id) +
                               " of " + annotations_path +
                               " (the official evaluation refuses incomplete results)");
    }
    std::vector<std::string> human;
    int64_t k = 0;
    for (simdjson::dom::element h : annotations.array(a, "answers", where)) {
      human.push_back(annotations.string(h, "answer", io::Where(where, "answers", k++)));
    }
    if (human.empty()) annotations.fail(where, "answers", "no human answers");
    const double acc = tasks::vqa_accuracy(it->second, human, protocol);
    total += acc;
    auto& at = by_answer_type[annotations.string(a, "answer_type", where)];
    at.first += acc;
    at.second += 1;
    auto& qt = by_question_type[annotations.string(a, "question_type", where)];
    qt.first += acc;
    qt.second += 1;
  }
  for (const auto& [id, answer] : answers) {
    if (!annotated.count(id)) {
      throw std::runtime_error(results_path + ": question_id " + std::to_string(id) +
                               " is not in " + annotations_path +
                               " (the official evaluation refuses such results)");
    }
  }
  if (!questions_path.empty()) {
    const auto questions = io::JsonFile::load(questions_path);
    std::set<int64_t> asked;
    i = 0;
    for (simdjson::dom::element q : questions.array(questions.root(), "questions", {})) {
      asked.insert(questions.integer(q, "question_id", io::Where("questions", i++)));
    }
    for (const int64_t id : annotated) {
      if (!asked.count(id)) {
        throw std::runtime_error(questions_path + ": no question_id " + std::to_string(id) +
                                 " annotated in " + annotations_path);
      }
    }
  }
  out.questions = static_cast<int64_t>(annotated.size());
  if (anns.size() == 0) throw std::runtime_error(annotations_path + ": no annotations");
  out.overall = percent2(total, anns.size());
  for (const auto& [type, s] : by_answer_type)
    out.per_answer_type[type] = percent2(s.first, s.second);
  for (const auto& [type, s] : by_question_type) {
    out.per_question_type[type] = percent2(s.first, s.second);
  }
  return out;
}

std::string format_score(const ScoreResult& r) {
  std::string t = fmt::format(
      "Overall Accuracy is: {:.2f}\n\nPer Answer Type Accuracy is the "
      "following:\n",
      r.overall);
  for (const auto& [type, v] : r.per_answer_type) t += fmt::format("{} : {:.2f}\n", type, v);
  t += "\nPer Question Type Accuracy is the following:\n";
  for (const auto& [type, v] : r.per_question_type) t += fmt::format("{} : {:.2f}\n", type, v);
  return t;
}

std::string score_json(const ScoreResult& r) {
  return nlohmann::json{{"overall", r.overall},
                        {"perAnswerType", r.per_answer_type},
                        {"perQuestionType", r.per_question_type},
                        {"questions", r.questions}}
             .dump(2) +
         "\n";
}

}  // namespace xmodal::eval
