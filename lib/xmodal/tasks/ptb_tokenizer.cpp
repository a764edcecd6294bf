#include "xmodal/tasks/ptb_tokenizer.h"

#include <array>
#include <cctype>
#include <string_view>
#include <unordered_set>

namespace xmodal::tasks {
namespace {

// Bytes of multi-byte UTF-8 characters count as letters (café, naïve stay words).
bool is_alpha(unsigned char c) { return std::isalpha(c) != 0 || c >= 0x80; }
bool is_digit(unsigned char c) { return c >= '0' && c <= '9'; }
bool is_alnum(unsigned char c) { return is_alpha(c) || is_digit(c); }

// Typographic characters in their ASCII spelling, as the lexer normalizes them.
std::string normalize(const std::string& line) {
  static const std::array<std::pair<std::string_view, std::string_view>, 13> kMap = {{
      {"\u2018", "`"},
      {"\u201B", "`"},
      {"\u2019", "'"},
      {"\u201C", "\""},
      {"\u201D", "\""},
      {"\u2013", " -- "},
      {"\u2014", " -- "},
      {"\u2026", " ... "},
      {"\u00BD", "1/2"},
      {"\u00BC", "1/4"},
      {"\u00BE", "3/4"},
      {"\u00A0", " "},
      {"\t", " "},
  }};
  std::string out;
  out.reserve(line.size());
  for (size_t i = 0; i < line.size();) {
    bool replaced = false;
    for (const auto& [from, to] : kMap) {
      if (line.compare(i, from.size(), from) == 0) {
        out += to;
        i += from.size();
        replaced = true;
        break;
      }
    }
    if (!replaced) out += line[i++];
  }
  return out;
}

// Java's toLowerCase for ASCII and the Latin-1 capitals (UTF-8 C3 80..9E but for U+00D7).
std::string lower(std::string s) {
  for (size_t i = 0; i < s.size(); ++i) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (c >= 'A' && c <= 'Z') {
      s[i] = static_cast<char>(c + 32);
    } else if (c == 0xC3 && i + 1 < s.size()) {
      const auto d = static_cast<unsigned char>(s[i + 1]);
      if (d >= 0x80 && d <= 0x9E && d != 0x97) s[i + 1] = static_cast<char>(d + 0x20);
      ++i;
    }
  }
  return s;
}

// Words that keep their final period (the lexer's ABBREV lists, matched without regard to
// case) and the few it matches only capitalized ("Miss." but "miss .").
bool is_abbreviation(const std::string& word, bool before_number) {
  static const std::unordered_set<std::string> kAny = {
      // months, days
      "jan", "feb", "mar", "apr", "jun", "jul", "aug", "sep", "sept", "oct", "nov", "dec", "mon",
      "tue", "tues", "wed", "thu", "thurs", "fri",
      // states
      "ala", "ariz", "calif", "colo", "conn", "ct", "dak", "fla", "ga", "ind", "kan", "kans", "ky",
      "md", "mich", "minn", "mo", "mont", "neb", "nev", "okla", "penn", "tenn", "va", "vt", "wis",
      "wisc", "wyo",
      // companies
      "inc", "co", "cos", "corp", "pty", "ptys", "pte", "ptes", "ltd", "plc", "bancorp", "dept",
      "bhd", "assn", "univ", "intl", "sys", "invt", "elec", "natl", "mfg", "mtg",
      // titles and places
      "mr", "mrs", "ms", "dr", "drs", "prof", "profs", "sen", "sens", "rep", "reps", "atty",
      "attys", "lt", "col", "gen", "messrs", "gov", "govs", "adm", "rev", "maj", "sgt", "cpl",
      "pvt", "mt", "capt", "st", "ste", "ave", "pres", "lieut", "hon", "brig", "cmdr", "comdr",
      "pfc", "spc", "supt", "supts", "det", "m", "mme", "mmes", "mlle", "mlles", "jr", "sr", "bros",
      "blvd", "rd", "esq", "ed.d", "ph.d", "ft",
      // others
      "etc", "al", "seq", "vs", "alex", "wm", "jos", "cie", "a.k.a", "cf", "treas", "sq", "tel"};
  static const std::unordered_set<std::string> kCapitalized = {
      "Az", "Ark", "Del", "Ill", "La", "Mass", "Miss", "Ore", "Pa", "Tex", "Wash"};
  static const std::unordered_set<std::string> kBeforeNumber = {
      "ca", "fig", "figs", "prop", "no", "nos", "art", "bldg", "pp", "op", "est", "ext"};
  const std::string low = lower(word);
  if (kAny.count(low) || (before_number && kBeforeNumber.count(low))) return true;
  if (word.size() > 1 && std::isupper(static_cast<unsigned char>(word[0])) &&
      kCapitalized.count(std::string(1, word[0]) + lower(word.substr(1)))) {
    return true;
  }
  // A single letter or an acronym of single letters: "a.", "u.s.", "p.m."
  for (size_t i = 0; i < word.size(); i += 2) {
    if (!std::isalpha(static_cast<unsigned char>(word[i]))) return false;
    if (i + 1 < word.size() && word[i + 1] != '.') return false;
  }
  return !word.empty();
}

// Clitics the lexer splits off a word's end, longest first.
constexpr std::array<std::string_view, 7> kClitics = {"n't", "'ll", "'re", "'ve", "'s", "'m", "'d"};

bool ends_with_ci(const std::string& s, std::string_view suffix) {
  if (s.size() < suffix.size()) return false;
  for (size_t i = 0; i < suffix.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(s[s.size() - suffix.size() + i])) != suffix[i]) {
      return false;
    }
  }
  return true;
}

// A word (no leading or trailing punctuation) with its clitics split off.
void emit_word(const std::string& word, std::vector<std::string>& out) {
  const std::string low = lower(word);
  if (low == "cannot") {
    out.push_back(word.substr(0, 3));
    out.push_back(word.substr(3));
    return;
  }
  for (const char* a : {"gonna", "gotta", "wanna", "lemme", "gimme"}) {
    if (low == a) {
      out.push_back(word.substr(0, 3));
      out.push_back(word.substr(3));
      return;
    }
  }
  if (low == "'tis") {
    out.push_back(word.substr(0, 2));
    out.push_back(word.substr(2));
    return;
  }
  std::vector<std::string> tail;
  std::string rest = word;
  bool split = true;
  while (split) {
    split = false;
    for (std::string_view c : kClitics) {
      // n't needs a letter before it; 's and the others need anything before them
      if (rest.size() > c.size() && ends_with_ci(rest, c) &&
          (c != "n't" || is_alpha(static_cast<unsigned char>(rest[rest.size() - 4])))) {
        tail.push_back(rest.substr(rest.size() - c.size()));
        rest.resize(rest.size() - c.size());
        split = true;
        break;
      }
    }
  }
  out.push_back(rest);
  out.insert(out.end(), tail.rbegin(), tail.rend());
}

// A number with a separator ("3:30", "1,000", "2.5") runs into letters: "3:30pm" -> "3:30 pm".
size_t number_letters_split(const std::string& w) {
  size_t i = 0;
  while (i < w.size() && is_digit(static_cast<unsigned char>(w[i]))) ++i;
  if (i == 0) return 0;
  bool separated = false;
  while (i + 1 < w.size() && (w[i] == '.' || w[i] == ',' || w[i] == ':') &&
         is_digit(static_cast<unsigned char>(w[i + 1]))) {
    separated = true;
    ++i;
    while (i < w.size() && is_digit(static_cast<unsigned char>(w[i]))) ++i;
  }
  if (!separated || i >= w.size() || !std::isalpha(static_cast<unsigned char>(w[i]))) return 0;
  for (size_t j = i; j < w.size(); ++j) {
    if (!std::isalpha(static_cast<unsigned char>(w[j]))) return 0;
  }
  return i;
}

// Whether character i of s joins the word being read (s[i] is not alphanumeric).
bool joins_word(const std::string& s, size_t i) {
  if (i + 1 >= s.size() || i == 0) return false;
  const auto prev = static_cast<unsigned char>(s[i - 1]);
  const auto next = static_cast<unsigned char>(s[i + 1]);
  switch (s[i]) {
    case '-':
    case '/':
    case '@':
      return is_alnum(prev) && is_alnum(next);
    case '.':
      return is_alnum(prev) && is_alnum(next);
    case ',':
    case ':':
      return is_digit(prev) && is_digit(next);
    case '\'':
      // o'clock, ma'am, 1990's (emit_word then splits the clitics 's 'll n't ...); not 5'10
      return is_alnum(prev) && is_alpha(next);
    default:
      return false;
  }
}

// The token(s) of the non-word character at s[i] (and the run it starts); returns the
// characters read.
size_t emit_punctuation(const std::string& s, size_t i, std::vector<std::string>& out) {
  const size_t n = s.size();
  const char c = s[i];
  // brackets as the PTB spells them (lower-cased)
  static const std::string kBrackets = "()[]{}";
  static const char* const kBracketTokens[] = {"-lrb-", "-rrb-", "-lsb-",
                                               "-rsb-", "-lcb-", "-rcb-"};
  if (const size_t b = kBrackets.find(c); b != std::string::npos) {
    out.push_back(kBracketTokens[b]);
    return 1;
  }
  size_t run = 1;
  while (i + run < n && s[i + run] == c) ++run;
  switch (c) {
    case '.':
      out.push_back(run >= 3 ? "..." : ".");
      if (run < 3) run = 1;
      break;
    case '-':
      out.push_back(run >= 2 ? "--" : "-");
      break;
    case '!':
    case '?': {
      run = 0;
      while (i + run < n && (s[i + run] == '!' || s[i + run] == '?')) ++run;
      out.push_back(s.substr(i, run));
      break;
    }
    case '"':
      out.push_back(i == 0 ? "``" : "''");
      run = 1;
      break;
    case '\'':
      if (run >= 2) {
        out.push_back(i == 0 ? "``" : "''");
        run = 2;
      } else {
        out.push_back(i == 0 ? "`" : "'");
      }
      break;
    case '`':
      out.push_back(run >= 2 ? "``" : "`");
      run = std::min<size_t>(run, 2);
      break;
    case '<': {
      // an SGML-like tag stays one token: <angle>
      const size_t close = s.find('>', i);
      if (close != std::string::npos) {
        out.push_back(s.substr(i, close - i + 1));
        run = close - i + 1;
      } else {
        out.push_back("<");
        run = 1;
      }
      break;
    }
    case '#':
    case '@': {
      // #hashtag and @user stay one token; "#1" does not
      if (i + 1 < n && std::isalpha(static_cast<unsigned char>(s[i + 1]))) {
        size_t j = i + 1;
        while (j < n && (is_alnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
        out.push_back(s.substr(i, j - i));
        run = j - i;
      } else {
        out.push_back(s.substr(i, run));
      }
      break;
    }
    default:
      out.push_back(std::string(1, c));
      run = 1;
  }
  return run;
}

// The tokens of one whitespace-free chunk; `next_is_number` tells whether the next chunk starts
// with a digit (for abbreviations such as "no. 5").
void tokenize_chunk(const std::string& s, bool next_is_number, std::vector<std::string>& out) {
  size_t i = 0;
  const size_t n = s.size();
  while (i < n) {
    const char c = s[i];
    const auto uc = static_cast<unsigned char>(c);
    if (is_alnum(uc) || (c == '-' && i + 1 < n && is_digit(static_cast<unsigned char>(s[i + 1])) &&
                         (i == 0 || !is_alnum(static_cast<unsigned char>(s[i - 1]))))) {
      // a word: alphanumerics joined by internal connectors; "-5" is a number
      size_t j = i + 1;
      while (j < n && (is_alnum(static_cast<unsigned char>(s[j])) || joins_word(s, j))) ++j;
      std::string word = s.substr(i, j - i);
      // "'tis", "'n'": a leading apostrophe the lexer keeps
      if (!out.empty() && out.back() == "`" && i > 0 && s[i - 1] == '\'' &&
          (lower(word) == "tis" || (lower(word) == "n" && j < n && s[j] == '\''))) {
        out.pop_back();
        word = "'" + word;
        if (lower(word) == "'n") {
          word += "'";
          ++j;
        }
      }
      // a final period that belongs to the word
      if (j < n && s[j] == '.' && (j + 1 >= n || s[j + 1] != '.') &&
          is_abbreviation(word, next_is_number && j + 1 >= n)) {
        word += '.';
        ++j;
      }
      if (const size_t at = number_letters_split(word)) {
        out.push_back(word.substr(0, at));
        out.push_back(word.substr(at));
      } else {
        emit_word(word, out);
      }
      i = j;
      continue;
    }
    i += emit_punctuation(s, i, out);
  }
}

}  // namespace

std::vector<std::string> ptb_tokens(const std::string& line) {
  const std::string text = normalize(line);
  std::vector<std::string> chunks;
  size_t i = 0;
  while (i < text.size()) {
    while (i < text.size() && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
    size_t j = i;
    while (j < text.size() && !std::isspace(static_cast<unsigned char>(text[j]))) ++j;
    if (j > i) chunks.push_back(text.substr(i, j - i));
    i = j;
  }
  std::vector<std::string> tokens;
  for (size_t c = 0; c < chunks.size(); ++c) {
    const bool next_is_number =
        c + 1 < chunks.size() && is_digit(static_cast<unsigned char>(chunks[c + 1][0]));
    tokenize_chunk(chunks[c], next_is_number, tokens);
  }
  for (auto& t : tokens) t = lower(t);
  return tokens;
}

std::string coco_caption_tokenize(const std::string& caption) {
  static const std::unordered_set<std::string> kPunctuation = {
      "''", "'", "``", "`", "-LRB-", "-RRB-", "-LCB-", "-RCB-", ".",
      "?",  "!", ",",  ":", "-",     "--",    "...",   ";"};
  std::string out;
  for (const auto& t : ptb_tokens(caption)) {
    if (kPunctuation.count(t)) continue;
    if (!out.empty()) out += ' ';
    out += t;
  }
  return out;
}

}  // namespace xmodal::tasks
