#include "xmodal/serve/request.h"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <cctype>
#include <filesystem>
#include <stdexcept>
#include <system_error>

#include "xmodal/core/files.h"

namespace xmodal::serve {
namespace fs = std::filesystem;

nlohmann::json parse_body(const std::string& body, int max_depth) {
  if (body.find_first_not_of(" \t\r\n") == std::string::npos) {
    throw HttpError(400, ErrorKind::bad_json, "empty body: expected a JSON object or array");
  }
  // Nesting, counted outside strings: a deep [[[[...]]]] is refused before any parser recurses.
  int depth = 0;
  bool in_string = false, escaped = false;
  for (size_t i = 0; i < body.size(); ++i) {
    const char c = body[i];
    if (in_string) {
      if (escaped) {
        escaped = false;
      } else if (c == '\\') {
        escaped = true;
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '[' || c == '{') {
      if (++depth > max_depth) {
        throw HttpError(400, ErrorKind::bad_json,
                        "JSON nested deeper than " + std::to_string(max_depth) + " levels (byte " +
                            std::to_string(i) + ")");
      }
    } else if (c == ']' || c == '}') {
      --depth;
    }
  }
  try {
    return nlohmann::json::parse(body);
  } catch (const nlohmann::json::parse_error& e) {
    // "[json.exception.parse_error.101] parse error at line 1, column 5: ..." -> after "] "
    std::string what = e.what();
    const auto at = what.find("] ");
    if (at != std::string::npos) what = what.substr(at + 2);
    throw HttpError(400, ErrorKind::bad_json, "body is not valid JSON: " + clip(what, 200));
  } catch (const nlohmann::json::out_of_range&) {
    // 406 "number overflow parsing '1e400'": the number is the client's, maybe 100,000 digits
    throw HttpError(400, ErrorKind::bad_json,
                    "body is not valid JSON: a number out of range (beyond a double)");
  } catch (const nlohmann::json::exception& e) {
    throw HttpError(400, ErrorKind::bad_json, "body is not valid JSON: " + clip(e.what(), 200));
  }
}

std::string decode_base64(std::string_view text, const std::string& field) {
  if (text.rfind("data:", 0) == 0) {  // a data URI: data:image/png;base64,....
    const auto comma = text.find(',');
    if (comma == std::string_view::npos ||
        text.substr(0, comma).find(";base64") == std::string_view::npos) {
      throw HttpError(400, ErrorKind::bad_base64, field + ": a data: URI without ';base64,'");
    }
    text.remove_prefix(comma + 1);
  }
  static const std::array<int8_t, 256> table = [] {
    std::array<int8_t, 256> t{};
    t.fill(-1);
    const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    for (int i = 0; i < 64; ++i)
      t[static_cast<unsigned char>(alphabet[i])] = static_cast<int8_t>(i);
    return t;
  }();
  size_t end = text.size();
  size_t padding = 0;
  while (end > 0 && text[end - 1] == '=' && padding < 2) {
    --end;
    ++padding;
  }
  if (end % 4 == 1 || (padding > 0 && (end + padding) % 4 != 0)) {
    throw HttpError(400, ErrorKind::bad_base64,
                    field + ": not base64 (" + std::to_string(text.size()) +
                        " characters cannot be a base64 length)");
  }
  std::string out;
  out.reserve(end / 4 * 3 + 2);
  uint32_t bits = 0;
  int count = 0;
  for (size_t i = 0; i < end; ++i) {
    const int8_t v = table[static_cast<unsigned char>(text[i])];
    if (v < 0) {
      throw HttpError(400, ErrorKind::bad_base64,
                      field + ": not base64 (a character outside the alphabet at offset " +
                          std::to_string(i) + ")");
    }
    bits = (bits << 6) | static_cast<uint32_t>(v);
    if (++count == 4) {
      out.push_back(static_cast<char>((bits >> 16) & 0xFF));
      out.push_back(static_cast<char>((bits >> 8) & 0xFF));
      out.push_back(static_cast<char>(bits & 0xFF));
      bits = 0;
      count = 0;
    }
  }
  if (count == 2) {
    out.push_back(static_cast<char>((bits >> 4) & 0xFF));
  } else if (count == 3) {
    out.push_back(static_cast<char>((bits >> 10) & 0xFF));
    out.push_back(static_cast<char>((bits >> 2) & 0xFF));
  }
  return out;
}

std::string encode_base64(std::string_view bytes) {
  static const char* alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out.push_back(alphabet[(v >> s) & 63]);
  }
  if (i < bytes.size()) {
    uint32_t v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out.push_back(alphabet[(v >> 18) & 63]);
    out.push_back(alphabet[(v >> 12) & 63]);
    out.push_back(i + 1 < bytes.size() ? alphabet[(v >> 6) & 63] : '=');
    out.push_back('=');
  }
  return out;
}

std::string resolve_under(const std::string& root, const std::string& path,
                          const std::string& field) {
  if (path.empty()) throw HttpError(400, ErrorKind::bad_field, field + ": an empty path");
  if (path.find('\0') != std::string::npos) {
    throw HttpError(400, ErrorKind::bad_field, field + ": a path with a NUL byte");
  }
  std::error_code ec;
  const fs::path base = fs::canonical(root, ec);
  if (ec) throw HttpError(500, ErrorKind::image_root, "--image-root " + root + ": " + ec.message());
  const fs::path given(path);
  const fs::path joined = given.is_absolute() ? given : base / given;
  // canonical() resolves every symbolic link and "..": what is left must lie inside the root
  const fs::path real = fs::canonical(joined, ec);
  if (ec) {
    // say "outside" before "missing" for a path that leaves the root lexically
    const fs::path lexical = joined.lexically_normal();
    const auto rel = lexical.lexically_relative(base);
    if (rel.empty() || *rel.begin() == "..") {
      throw HttpError(403, ErrorKind::forbidden_path,
                      field + ": " + path + " is outside --image-root");
    }
    throw HttpError(400, ErrorKind::bad_image,
                    field + ": " + path + ": no such file under --image-root");
  }
  const auto rel = real.lexically_relative(base);
  if (rel.empty() || *rel.begin() == ".." || rel == ".") {
    throw HttpError(403, ErrorKind::forbidden_path,
                    field + ": " + path + " is outside --image-root (after resolving links)");
  }
  try {
    check_regular_file(real.string());
  } catch (const FileError& e) {
    throw HttpError(400, ErrorKind::bad_image, field + ": " + path + ": " + e.reason());
  }
  return real.string();
}

bool constant_time_equal(std::string_view a, std::string_view b) {
  // every byte of `b` (the candidate) is looked at whatever matches: no early exit
  unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    const unsigned char x = a.empty() ? 0 : static_cast<unsigned char>(a[i % a.size()]);
    diff |= static_cast<unsigned char>(x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0 && !a.empty();
}

std::string api_key_from(const std::string& contents) {
  std::string_view key(contents);
  if (!key.empty() && key.back() == '\n') key.remove_suffix(1);
  if (!key.empty() && key.back() == '\r') key.remove_suffix(1);
  if (key.empty()) throw std::invalid_argument("it is empty");
  for (size_t i = 0; i < key.size(); ++i) {
    const auto c = static_cast<unsigned char>(key[i]);
    if (c > 0x20 && c < 0x7f) continue;
    std::string what;
    switch (c) {
      case '\t':
        what = "a tab";
        break;
      case ' ':
        what = "a space";
        break;
      case '\n':
      case '\r':
        what = "more than one line";
        break;
      case 0:
        what = "a NUL byte";
        break;
      default:
        what = c < 0x20 || c == 0x7f ? "a control character" : "a non-ASCII byte";
    }
    throw std::invalid_argument(
        "the key holds " + what + " at byte " + std::to_string(i) +
        " (a key is one line of visible ASCII characters, a final newline allowed)");
  }
  return std::string(key);
}

std::string bearer_token(std::string_view authorization) {
  constexpr std::string_view scheme = "bearer";
  if (authorization.size() <= scheme.size()) return {};
  for (size_t i = 0; i < scheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(authorization[i])) != scheme[i]) return {};
  }
  std::string_view rest = authorization.substr(scheme.size());
  if (rest.front() != ' ' && rest.front() != '\t') return {};
  while (!rest.empty() && (rest.front() == ' ' || rest.front() == '\t')) rest.remove_prefix(1);
  while (!rest.empty() && (rest.back() == ' ' || rest.back() == '\t')) rest.remove_suffix(1);
  return std::string(rest);
}

std::string clip(std::string_view text, size_t max) {
  const auto newline = text.find_first_of("\r\n");
  const bool cut = newline != std::string_view::npos || text.size() > max;
  text = text.substr(0, std::min(newline, max));
  return cut ? std::string(text) + "..." : std::string(text);
}

}  // namespace xmodal::serve
