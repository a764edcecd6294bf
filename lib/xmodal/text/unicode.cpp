#include "xmodal/text/unicode.h"

#include <algorithm>

namespace xmodal::text::unicode {
namespace {

// Hangul syllables decompose arithmetically (Unicode 3.12).
constexpr char32_t kHangulFirst = 0xAC00, kJamoL = 0x1100, kJamoV = 0x1161, kJamoT = 0x11A7;
constexpr char32_t kJamoVCount = 21, kJamoTCount = 28, kHangulCount = 11172;

uint8_t piecewise_lookup(const detail::FlagRange* table, size_t n, char32_t c) {
  // The last entry whose `first` is <= c.
  const auto* it = std::upper_bound(
      table, table + n, c, [](char32_t v, const detail::FlagRange& r) { return v < r.first; });
  return it == table ? 0 : (it - 1)->value;
}

const detail::Mapping* find_mapping(const detail::Mapping* table, size_t n, char32_t c) {
  const auto* it = std::lower_bound(table, table + n, c,
                                    [](const detail::Mapping& m, char32_t v) { return m.cp < v; });
  return it != table + n && it->cp == c ? it : nullptr;
}

// Flags of ASCII, looked up on every character of the common case.
struct AsciiFlags {
  uint8_t value[128];
  AsciiFlags() : value() {
    for (char32_t c = 0; c < 128; ++c) {
      value[c] = piecewise_lookup(detail::kFlagRanges, detail::kFlagRangeCount, c);
    }
  }
};

}  // namespace

const char* version() { return detail::kUnicodeVersion; }

uint8_t flags(char32_t c) {
  static const AsciiFlags ascii;
  if (c < 128) return ascii.value[c];
  return piecewise_lookup(detail::kFlagRanges, detail::kFlagRangeCount, c);
}

uint8_t combining_class(char32_t c) {
  if (c < 0x300) return 0;  // the first non-starter is U+0300
  return piecewise_lookup(detail::kCombiningClassRanges, detail::kCombiningClassRangeCount, c);
}

void append_lower(char32_t c, std::u32string& out) {
  if (c < 128) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
    return;
  }
  const auto* m = find_mapping(detail::kLower, detail::kLowerCount, c);
  if (m == nullptr) {
    out.push_back(c);
  } else {
    out.append(detail::kLowerPool + m->offset, m->length);
  }
}

void append_decomposition(char32_t c, std::u32string& out) {
  if (c < 0xC0) {  // the first character with a canonical decomposition is U+00C0
    out.push_back(c);
  } else if (c >= kHangulFirst && c < kHangulFirst + kHangulCount) {
    const char32_t s = c - kHangulFirst;
    out.push_back(kJamoL + s / (kJamoVCount * kJamoTCount));
    out.push_back(kJamoV + (s % (kJamoVCount * kJamoTCount)) / kJamoTCount);
    if (s % kJamoTCount != 0) out.push_back(kJamoT + s % kJamoTCount);
  } else if (const auto* m = find_mapping(detail::kDecomposition, detail::kDecompositionCount, c)) {
    out.append(detail::kDecompositionPool + m->offset, m->length);
  } else {
    out.push_back(c);
  }
}

std::u32string nfd(std::u32string_view s) {
  std::u32string out;
  out.reserve(s.size());
  for (const char32_t c : s) append_decomposition(c, out);
  // Canonical ordering: a stable sort by combining class of every run of non-starters.
  for (size_t i = 0; i < out.size();) {
    if (combining_class(out[i]) == 0) {
      ++i;
      continue;
    }
    size_t end = i;
    while (end < out.size() && combining_class(out[end]) != 0) ++end;
    std::stable_sort(out.begin() + i, out.begin() + end, [](char32_t a, char32_t b) {
      return combining_class(a) < combining_class(b);
    });
    i = end;
  }
  return out;
}

std::u32string decode_utf8(std::string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char b = p[i];
    if (b < 0x80) {
      out.push_back(b);
      ++i;
      continue;
    }
    // Length and the allowed range of the second byte (Unicode table 3-7).
    int len = 0;
    unsigned char lo = 0x80, hi = 0xBF;
    if (b >= 0xC2 && b <= 0xDF) {
      len = 2;
    } else if (b >= 0xE0 && b <= 0xEF) {
      len = 3;
      if (b == 0xE0) lo = 0xA0;  // no overlong forms
      if (b == 0xED) hi = 0x9F;  // no surrogates
    } else if (b >= 0xF0 && b <= 0xF4) {
      len = 4;
      if (b == 0xF0) lo = 0x90;  // no overlong forms
      if (b == 0xF4) hi = 0x8F;  // nothing above U+10FFFF
    }
    if (len == 0) {  // stray continuation byte, C0, C1 or F5..FF
      out.push_back(0xFFFD);
      ++i;
      continue;
    }
    char32_t c = b & (0xFF >> (len + 1));
    size_t j = i + 1;
    for (int k = 1; k < len; ++k, ++j) {
      const unsigned char lo_k = k == 1 ? lo : 0x80, hi_k = k == 1 ? hi : 0xBF;
      if (j >= n || p[j] < lo_k || p[j] > hi_k) break;
      c = (c << 6) | (p[j] & 0x3F);
    }
    if (j - i == static_cast<size_t>(len)) {
      out.push_back(c);
    } else {
      out.push_back(0xFFFD);  // the maximal subpart p[i, j) is replaced as one
    }
    i = j;
  }
  return out;
}

void append_utf8(char32_t c, std::string& out) {
  if (c < 0x80) {
    out.push_back(static_cast<char>(c));
  } else if (c < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (c >> 6)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else if (c < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (c >> 12)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (c >> 18)));
    out.push_back(static_cast<char>(0x80 | ((c >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((c >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (c & 0x3F)));
  }
}

}  // namespace xmodal::text::unicode
