// Fast JSON reading (simdjson DOM) with errors that name the file, the field path and, for
// malformed text, the byte offset. COCO's train instances file is ~450 MB: simdjson parses it
// in about a second where a general-purpose DOM takes tens of seconds and several times the memory.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <memory>
#include <string>

namespace xmodal::io {

/// Where a value sits, e.g. annotations[17] or annotations[17].answers[3]; turned into text
/// only when there is an error to report (parsing 400 MB must not build millions of strings).
struct Where {
  const char* list = nullptr;
  int64_t index = -1;
  const char* inner = nullptr;
  int64_t inner_index = -1;

  Where() = default;
  Where(const char* list_name, int64_t i) : list(list_name), index(i) {}
  Where(const Where& outer, const char* inner_name, int64_t i)
      : list(outer.list), index(outer.index), inner(inner_name), inner_index(i) {}
  std::string str() const;
};

/// A parsed JSON file. Accessors throw std::runtime_error naming the file and the field:
///   data/x.json: annotations[17].image_id: expected an integer, got a string
class JsonFile {
 public:
  /// Parses `path`. Malformed JSON: "path: malformed JSON at byte 1234 (line 5, column 9): ...".
  static JsonFile load(const std::string& path);

  simdjson::dom::element root() const { return root_; }
  const std::string& path() const { return path_; }

  // Field access on an object `e` found at `where` ("annotations[3]").
  simdjson::dom::array array(simdjson::dom::element e, const char* key, const Where& where) const;
  simdjson::dom::object object(simdjson::dom::element e, const char* key, const Where& where) const;
  int64_t integer(simdjson::dom::element e, const char* key, const Where& where) const;
  double number(simdjson::dom::element e, const char* key, const Where& where) const;
  std::string string(simdjson::dom::element e, const char* key, const Where& where) const;
  bool boolean(simdjson::dom::element e, const char* key, const Where& where) const;
  bool has(simdjson::dom::element e, const char* key) const;

  /// Throws "path: where: message".
  [[noreturn]] void fail(const Where& where, const std::string& message) const;
  /// Throws "path: where.key: message".
  [[noreturn]] void fail(const Where& where, const char* key, const std::string& message) const;

 private:
  simdjson::dom::element field(simdjson::dom::element e, const char* key, const Where& where) const;

  std::string path_;
  std::unique_ptr<simdjson::dom::parser> parser_;
  simdjson::dom::element root_;
};

}  // namespace xmodal::io
