// Fast JSON reading (simdjson DOM) with errors that name the file, the field path and, for
// malformed text, the byte offset. COCO's train instances file is ~450 MB: simdjson parses it
// in about a second where a general-purpose DOM takes tens of seconds and several times the memory.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>

namespace xmodal::io {

/// A parsed JSON file. Accessors throw std::runtime_error naming the file and the field:
///   data/x.json: annotations[17].image_id: expected an integer, got a string
class JsonFile {
 public:
  /// Parses `path`. Malformed JSON: "path: malformed JSON at byte 1234 (line 5, column 9): ...".
  static JsonFile load(const std::string& path);

  simdjson::dom::element root() const { return root_; }
  const std::string& path() const { return path_; }

  // Field access on an object `e` found at `where` ("annotations[3]").
  simdjson::dom::array array(simdjson::dom::element e, const char* key,
                             const std::string& where) const;
  simdjson::dom::object object(simdjson::dom::element e, const char* key,
                               const std::string& where) const;
  int64_t integer(simdjson::dom::element e, const char* key, const std::string& where) const;
  double number(simdjson::dom::element e, const char* key, const std::string& where) const;
  std::string string(simdjson::dom::element e, const char* key, const std::string& where) const;
  bool has(simdjson::dom::element e, const char* key) const;

  /// Throws "path: where: message".
  [[noreturn]] void fail(const std::string& where, const std::string& message) const;

 private:
  simdjson::dom::element field(simdjson::dom::element e, const char* key,
                               const std::string& where) const;

  std::string path_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
};

}  // namespace xmodal::io
