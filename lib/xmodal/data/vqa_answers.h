// VQA answers: the official evaluation's normalisation, soft scores and the answer vocabulary.
//
// normalize_answer() follows the official evaluation script (GT-Vision-Lab/VQA,
// PythonEvaluationTools/vqaEvaluation/vqaEval.py; the same at master a013f00 and before it),
// quirks included:
//   punctuation: each of  ; / [ ] " { } ( ) = + \\ _ - > < @ ` , ? !  is deleted when the original
//     answer has it next to a space or contains digit,digit anywhere, else replaced by a space;
//     then a period not followed by a digit is deleted (at most 32 of them, the script passes
//     re.UNICODE as the count);
//   words: lower-case, split on whitespace, number words none/zero..ten -> digits, drop the
//     articles a/an/the, expand the script's 120 contractions ("dont" -> "don't").
#pragma once

#include <map>
#include <string>
#include <vector>

namespace xmodal::data {

/// The punctuation step alone.
std::string vqa_process_punctuation(const std::string& text);
/// The digit/article/contraction step alone.
std::string vqa_process_digit_article(const std::string& text);
/// Both steps, after turning newlines and tabs into spaces and trimming (as the script does to
/// predictions).
std::string normalize_answer(const std::string& answer);

/// Soft target of an answer given by `count` of the 10 annotators: min(1, 0.3 * count) for
/// 1..3 (0.3, 0.6, 0.9), 1.0 for 4 or more, 0 for none.
float soft_score(int count);

/// Answer strings <-> class indices, most frequent first.
class AnswerVocab {
 public:
  AnswerVocab() = default;
  explicit AnswerVocab(std::vector<std::string> answers);

  /// From every human answer (normalised) of the training questions: answers seen at least
  /// `min_count` times, at most `top_k` of them (0 = no limit), ties broken alphabetically.
  static AnswerVocab build(const std::vector<std::vector<std::string>>& answers_per_question,
                           int min_count, int top_k);

  /// One answer per line. Throws std::runtime_error naming the file.
  void save(const std::string& path) const;
  static AnswerVocab load(const std::string& path);

  size_t size() const { return answers_.size(); }
  /// -1 when the answer is not in the vocabulary.
  int index(const std::string& normalized_answer) const;
  const std::string& answer(size_t index) const { return answers_.at(index); }
  const std::vector<std::string>& answers() const { return answers_; }

  /// (class, soft score) for the 10 human answers of one question (normalised here); answers
  /// outside the vocabulary are dropped.
  std::vector<std::pair<int, float>> targets(const std::vector<std::string>& human_answers) const;

 private:
  std::vector<std::string> answers_;
  std::map<std::string, int> index_;
};

}  // namespace xmodal::data
