// What `xmodal serve` makes of a request before the model sees it: the JSON body (nesting
// limited before parsing), base64 images, image paths confined to --image-root. Every problem
// is an HttpError (serve/errors.h): a status, an error kind and a one-line message that names
// the field.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <string>
#include <string_view>

#include "xmodal/serve/errors.h"

namespace xmodal::serve {

/// The JSON body: HttpError 400 bad_json when it is empty, not JSON (with the byte offset), or
/// nested deeper than `max_depth` (checked first, without recursion).
nlohmann::json parse_body(const std::string& body, int max_depth = 16);

/// RFC 4648 base64 (standard alphabet; padding optional; a `data:...;base64,` prefix is
/// skipped): HttpError 400 bad_base64 naming `field` and the offending offset otherwise.
std::string decode_base64(std::string_view text, const std::string& field);
std::string encode_base64(std::string_view bytes);

/// `path` (relative to `root` or absolute) as a canonical path inside `root`: HttpError 403
/// forbidden_path when it leaves the folder (`..`, a symbolic link out of it) and 400
/// bad_image when it is missing or not a regular file (a folder, a device, a FIFO).
std::string resolve_under(const std::string& root, const std::string& path,
                          const std::string& field);

/// Equal strings, in time that depends only on their lengths (for API keys).
bool constant_time_equal(std::string_view a, std::string_view b);

/// The key held by an API key file's contents: one line of visible ASCII (a single trailing
/// newline allowed). std::invalid_argument saying what is wrong otherwise (empty, a tab, a
/// space, a second line, a NUL byte, another control or non-ASCII byte, with its offset): such
/// a key could never be sent in a header.
std::string api_key_from(const std::string& contents);

/// The key of an `Authorization: Bearer KEY` value (the scheme case-insensitive, RFC 7235),
/// "" for another scheme.
std::string bearer_token(std::string_view authorization);

/// A client's text for an error message or a log line: at most `max` bytes (then "..."), the
/// first line only (a C++ exception's message may carry a stack trace after it).
std::string clip(std::string_view text, size_t max = 100);

}  // namespace xmodal::serve
