// Small string helpers used across layers.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace xmodal {

/// Edit distance (insert, delete, substitute, swap two neighbours; each costs 1).
size_t edit_distance(std::string_view a, std::string_view b);

/// The candidate closest to `word` if it is plausibly a typo of it, else "".
/// "Plausible": edit distance <= max(1, |word| / 3), or one is a prefix of the other.
std::string closest_match(std::string_view word, const std::vector<std::string>& candidates);

/// Joins `parts` with `sep`.
std::string join(const std::vector<std::string>& parts, std::string_view sep);

/// Splits on every occurrence of `sep` (empty parts are kept).
std::vector<std::string> split(std::string_view text, char sep);

/// `text` as a double-quoted JSON string literal (also valid YAML): quotes, backslashes and
/// control characters escaped, other bytes (UTF-8) kept as they are.
std::string quote_json(std::string_view text);

/// Whether `text` is well-formed UTF-8 (no overlong forms, surrogates or code points above
/// U+10FFFF), as a JSON string must be.
bool is_valid_utf8(std::string_view text);

/// `text` for a message: each byte of an ill-formed UTF-8 sequence as \xNN, the rest as is.
std::string escape_invalid_utf8(std::string_view text);

/// Removes leading and trailing ASCII whitespace.
std::string trim(std::string_view text);

/// Whether `text` begins / ends with `part`.
inline bool starts_with(std::string_view text, std::string_view part) {
  return text.substr(0, part.size()) == part;
}
inline bool ends_with(std::string_view text, std::string_view part) {
  return text.size() >= part.size() && text.substr(text.size() - part.size()) == part;
}

}  // namespace xmodal
