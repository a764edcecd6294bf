// The Unicode facts the WordPiece tokenizer needs, and UTF-8 decoding.
//
// Why generated tables and not ICU: the reference, Hugging Face's BertTokenizer, is Python and
// takes every answer (categories, NFD, str.lower()) from Python's `unicodedata`. Debian 12's
// Python 3.11 carries Unicode 14.0 while its ICU 72 carries Unicode 15.0, so ICU would disagree
// with the reference on the characters added in 15.0 (unassigned, hence dropped as "C*", for
// Python), and ICU lower-cases strings with the final-sigma rule that HF's one character at a
// time str.lower() never applies. The tables in unicode_tables.cpp are written by
// scripts/gen_unicode_tables.py from that same Python; they are about 185 KB of source, look up
// in O(log n), and spare every user of xmodal a link dependency on ICU.
//
// What the tables hold (everything else is derived here):
//   - per code point flags (below), as ranges of equal flags;
//   - str.lower() per character (U+0130 is the only one that becomes two code points);
//   - the full canonical decomposition (NFD) of every character but the Hangul syllables, which
//     decompose arithmetically, and the canonical combining classes for canonical ordering.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace xmodal::text::unicode {

/// Bits of flags(); each is a predicate of HF's BasicTokenizer (tokenization_bert.py).
enum Flag : uint8_t {
  kWhitespace = 1,    ///< _is_whitespace: space, \t, \n, \r or category Zs (-> " ")
  kControl = 2,       ///< dropped by _clean_text: U+0000, U+FFFD, category C* but \t \n \r
  kPunctuation = 4,   ///< _is_punctuation: ASCII 33-47, 58-64, 91-96, 123-126 or category P*
  kMark = 8,          ///< category Mn, removed after NFD when accents are stripped
  kSpace = 16,        ///< Python str.isspace(), where str.split() cuts (also U+2028, U+2029)
  kChineseChar = 32,  ///< _is_chinese_char: the CJK ideograph blocks HF lists
};

/// The Unicode version the tables were generated from (Python's unicodedata.unidata_version).
const char* version();

/// Flag bits of a code point (0 above U+10FFFF).
uint8_t flags(char32_t c);

/// Canonical combining class (0 for starters).
uint8_t combining_class(char32_t c);

/// Appends Python's str.lower() of the one character `c`.
void append_lower(char32_t c, std::u32string& out);

/// Appends the canonical decomposition (NFD, not yet canonically ordered) of `c`.
void append_decomposition(char32_t c, std::u32string& out);

/// unicodedata.normalize("NFD", s): full canonical decomposition and canonical ordering.
std::u32string nfd(std::u32string_view s);

/// Decodes UTF-8. Ill-formed input does not throw: each maximal ill-formed subpart (overlong
/// forms, surrogates, code points above U+10FFFF, truncated or stray bytes) becomes one U+FFFD,
/// exactly as Python's bytes.decode("utf-8", errors="replace").
std::u32string decode_utf8(std::string_view text);

/// Appends `c` encoded as UTF-8 (`c` must be a valid scalar value).
void append_utf8(char32_t c, std::string& out);

namespace detail {

/// Piecewise-constant table: `value` holds from `first` up to the next entry's `first`.
struct FlagRange {
  char32_t first;
  uint8_t value;
};

/// `cp` maps to pool[offset, offset + length).
struct Mapping {
  char32_t cp;
  uint16_t offset;
  uint8_t length;
};

// Defined in the generated unicode_tables.cpp.
extern const char* const kUnicodeVersion;
extern const FlagRange kFlagRanges[];
extern const size_t kFlagRangeCount;
extern const FlagRange kCombiningClassRanges[];
extern const size_t kCombiningClassRangeCount;
extern const Mapping kLower[];
extern const size_t kLowerCount;
extern const char32_t kLowerPool[];
extern const Mapping kDecomposition[];
extern const size_t kDecompositionCount;
extern const char32_t kDecompositionPool[];

}  // namespace detail
}  // namespace xmodal::text::unicode
