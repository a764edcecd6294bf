#include "xmodal/data/vqa_answers.h"

#include <algorithm>
#include <array>
#include <fstream>
#include <sstream>
#include <stdexcept>
#include <unordered_map>

#include "xmodal/core/error.h"
#include "xmodal/core/strings.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::data {
namespace {

// Facts transcribed from the official evaluation script (see vqa_answers.h).
const std::unordered_map<std::string, std::string>& contractions() {
  static const std::unordered_map<std::string, std::string> table = {
      {"aint", "ain't"},
      {"arent", "aren't"},
      {"cant", "can't"},
      {"couldve", "could've"},
      {"couldnt", "couldn't"},
      {"couldn'tve", "couldn't've"},
      {"couldnt've", "couldn't've"},
      {"didnt", "didn't"},
      {"doesnt", "doesn't"},
      {"dont", "don't"},
      {"hadnt", "hadn't"},
      {"hadnt've", "hadn't've"},
      {"hadn'tve", "hadn't've"},
      {"hasnt", "hasn't"},
      {"havent", "haven't"},
      {"hed", "he'd"},
      {"hed've", "he'd've"},
      {"he'dve", "he'd've"},
      {"hes", "he's"},
      {"howd", "how'd"},
      {"howll", "how'll"},
      {"hows", "how's"},
      {"Id've", "I'd've"},
      {"I'dve", "I'd've"},
      {"Im", "I'm"},
      {"Ive", "I've"},
      {"isnt", "isn't"},
      {"itd", "it'd"},
      {"itd've", "it'd've"},
      {"it'dve", "it'd've"},
      {"itll", "it'll"},
      {"let's", "let's"},
      {"maam", "ma'am"},
      {"mightnt", "mightn't"},
      {"mightnt've", "mightn't've"},
      {"mightn'tve", "mightn't've"},
      {"mightve", "might've"},
      {"mustnt", "mustn't"},
      {"mustve", "must've"},
      {"neednt", "needn't"},
      {"notve", "not've"},
      {"oclock", "o'clock"},
      {"oughtnt", "oughtn't"},
      {"ow's'at", "'ow's'at"},
      {"'ows'at", "'ow's'at"},
      {"'ow'sat", "'ow's'at"},
      {"shant", "shan't"},
      {"shed've", "she'd've"},
      {"she'dve", "she'd've"},
      {"she's", "she's"},
      {"shouldve", "should've"},
      {"shouldnt", "shouldn't"},
      {"shouldnt've", "shouldn't've"},
      {"shouldn'tve", "shouldn't've"},
      {"somebody'd", "somebodyd"},
      {"somebodyd've", "somebody'd've"},
      {"somebody'dve", "somebody'd've"},
      {"somebodyll", "somebody'll"},
      {"somebodys", "somebody's"},
      {"someoned", "someone'd"},
      {"someoned've", "someone'd've"},
      {"someone'dve", "someone'd've"},
      {"someonell", "someone'll"},
      {"someones", "someone's"},
      {"somethingd", "something'd"},
      {"somethingd've", "something'd've"},
      {"something'dve", "something'd've"},
      {"somethingll", "something'll"},
      {"thats", "that's"},
      {"thered", "there'd"},
      {"thered've", "there'd've"},
      {"there'dve", "there'd've"},
      {"therere", "there're"},
      {"theres", "there's"},
      {"theyd", "they'd"},
      {"theyd've", "they'd've"},
      {"they'dve", "they'd've"},
      {"theyll", "they'll"},
      {"theyre", "they're"},
      {"theyve", "they've"},
      {"twas", "'twas"},
      {"wasnt", "wasn't"},
      {"wed've", "we'd've"},
      {"we'dve", "we'd've"},
      {"weve", "we've"},
      {"werent", "weren't"},
      {"whatll", "what'll"},
      {"whatre", "what're"},
      {"whats", "what's"},
      {"whatve", "what've"},
      {"whens", "when's"},
      {"whered", "where'd"},
      {"wheres", "where's"},
      {"whereve", "where've"},
      {"whod", "who'd"},
      {"whod've", "who'd've"},
      {"who'dve", "who'd've"},
      {"wholl", "who'll"},
      {"whos", "who's"},
      {"whove", "who've"},
      {"whyll", "why'll"},
      {"whyre", "why're"},
      {"whys", "why's"},
      {"wont", "won't"},
      {"wouldve", "would've"},
      {"wouldnt", "wouldn't"},
      {"wouldnt've", "wouldn't've"},
      {"wouldn'tve", "wouldn't've"},
      {"yall", "y'all"},
      {"yall'll", "y'all'll"},
      {"y'allll", "y'all'll"},
      {"yall'd've", "y'all'd've"},
      {"y'alld've", "y'all'd've"},
      {"y'all'dve", "y'all'd've"},
      {"youd", "you'd"},
      {"youd've", "you'd've"},
      {"you'dve", "you'd've"},
      {"youll", "you'll"},
      {"youre", "you're"},
      {"youve", "you've"}};
  return table;
}

const std::unordered_map<std::string, std::string>& number_words() {
  static const std::unordered_map<std::string, std::string> table = {
      {"none", "0"}, {"zero", "0"}, {"one", "1"},   {"two", "2"},   {"three", "3"}, {"four", "4"},
      {"five", "5"}, {"six", "6"},  {"seven", "7"}, {"eight", "8"}, {"nine", "9"},  {"ten", "10"}};
  return table;
}

constexpr std::array<char, 21> kPunct = {';',  '/', '[', ']', '"', '{', '}', '(', ')', '=', '+',
                                         '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'};

bool is_digit(char c) { return c >= '0' && c <= '9'; }

bool has_digit_comma_digit(const std::string& s) {
  for (size_t i = 1; i + 1 < s.size(); ++i) {
    if (s[i] == ',' && is_digit(s[i - 1]) && is_digit(s[i + 1])) return true;
  }
  return false;
}

std::string replace_all(const std::string& s, char from, const std::string& to) {
  std::string out;
  for (char c : s) {
    if (c == from) {
      out += to;
    } else {
      out += c;
    }
  }
  return out;
}

}  // namespace

std::string vqa_process_punctuation(const std::string& in) {
  std::string out = in;
  const bool comma_digits = has_digit_comma_digit(in);
  for (char p : kPunct) {
    const std::string ps(1, p);
    // The test looks at the ORIGINAL text, as the script does.
    const bool near_space =
        in.find(ps + " ") != std::string::npos || in.find(" " + ps) != std::string::npos;
    out = replace_all(out, p, near_space || comma_digits ? "" : " ");
  }
  // Delete periods not followed by a digit, at most 32 (re.sub's count = re.UNICODE = 32).
  std::string result;
  int removed = 0;
  for (size_t i = 0; i < out.size(); ++i) {
    const bool followed_by_digit = i + 1 < out.size() && is_digit(out[i + 1]);
    if (out[i] == '.' && !followed_by_digit && removed < 32) {
      ++removed;
      continue;
    }
    result += out[i];
  }
  return result;
}

std::string vqa_process_digit_article(const std::string& in) {
  std::string lowered = in;
  for (auto& c : lowered) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::istringstream words(lowered);
  std::vector<std::string> kept;
  std::string word;
  while (words >> word) {
    const auto number = number_words().find(word);
    if (number != number_words().end()) word = number->second;
    if (word == "a" || word == "an" || word == "the") continue;
    kept.push_back(word);
  }
  for (auto& w : kept) {
    const auto c = contractions().find(w);
    if (c != contractions().end()) w = c->second;
  }
  return join(kept, " ");
}

std::string normalize_answer(const std::string& answer) {
  std::string text = answer;
  for (auto& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  return vqa_process_digit_article(vqa_process_punctuation(trim(text)));
}

float soft_score(int count) {
  if (count <= 0) return 0.0f;
  if (count >= 4) return 1.0f;
  return 0.3f * static_cast<float>(count);
}

AnswerVocab::AnswerVocab(std::vector<std::string> answers) : answers_(std::move(answers)) {
  for (size_t i = 0; i < answers_.size(); ++i) {
    if (!index_.emplace(answers_[i], static_cast<int>(i)).second) {
      throw std::invalid_argument("answer vocabulary lists '" + answers_[i] + "' twice");
    }
  }
}

AnswerVocab AnswerVocab::build(const std::vector<std::vector<std::string>>& answers_per_question,
                               int min_count, int top_k) {
  std::map<std::string, int64_t> counts;
  for (const auto& answers : answers_per_question) {
    for (const auto& a : answers) ++counts[normalize_answer(a)];
  }
  std::vector<std::pair<std::string, int64_t>> kept;
  for (const auto& [answer, n] : counts) {
    if (n >= min_count && !answer.empty()) kept.emplace_back(answer, n);
  }
  std::stable_sort(kept.begin(), kept.end(),
                   [](const auto& a, const auto& b) { return a.second > b.second; });
  if (top_k > 0 && kept.size() > static_cast<size_t>(top_k)) kept.resize(top_k);
  std::vector<std::string> answers;
  for (auto& [answer, n] : kept) answers.push_back(answer);
  return AnswerVocab(std::move(answers));
}

void AnswerVocab::save(const std::string& path) const {
  std::string text;
  for (const auto& a : answers_) text += a + "\n";
  io::write_file_atomic(path, text);
}

AnswerVocab AnswerVocab::load(const std::string& path) {
  std::istringstream in(io::read_file(path));
  std::vector<std::string> answers;
  std::string line;
  while (std::getline(in, line)) answers.push_back(line);
  if (answers.empty()) throw std::runtime_error(path + ": empty answer vocabulary");
  try {
    return AnswerVocab(std::move(answers));
  } catch (const std::invalid_argument&) {
    rethrow_in(path + ": ", ErrorKind::input);  // the file's answers are the bad input
  }
}

int AnswerVocab::index(const std::string& normalized_answer) const {
  const auto it = index_.find(normalized_answer);
  return it == index_.end() ? -1 : it->second;
}

std::vector<std::pair<int, float>> AnswerVocab::targets(
    const std::vector<std::string>& human_answers) const {
  std::map<int, int> counts;
  for (const auto& a : human_answers) {
    const int i = index(normalize_answer(a));
    if (i >= 0) ++counts[i];
  }
  std::vector<std::pair<int, float>> out;
  for (const auto& [i, n] : counts) out.emplace_back(i, soft_score(n));
  return out;
}

}  // namespace xmodal::data
