#include "xmodal/io/json.h"

#include <nlohmann/json.hpp>

#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::io {
namespace {

std::string type_name(simdjson::dom::element_type t) {
  using T = simdjson::dom::element_type;
  switch (t) {
    case T::ARRAY:
      return "a list";
    case T::OBJECT:
      return "an object";
    case T::INT64:
    case T::UINT64:
      return "an integer";
    case T::DOUBLE:
      return "a number";
    case T::STRING:
      return "a string";
    case T::BOOL:
      return "a boolean";
    case T::NULL_VALUE:
      return "null";
  }
  return "?";
}

}  // namespace

JsonFile JsonFile::load(const std::string& path) {
  JsonFile file;
  file.path_ = path;
  check_regular_file(path);  // simdjson would block on a FIFO or read a device without end
  file.parser_ = std::make_unique<simdjson::dom::parser>();
  const auto error = file.parser_->load(path).get(file.root_);
  if (error == simdjson::IO_ERROR) throw InputError("cannot read " + path);
  if (error) {
    // simdjson says what is wrong but not where; the slow parser finds the byte on this
    // error path only.
    std::string where;
    try {
      const auto unused = nlohmann::json::parse(read_file(path));
      (void)unused;
    } catch (const nlohmann::json::parse_error& e) {
      where = " at byte " + std::to_string(e.byte);
    } catch (const std::exception&) {
    }
    throw InputError(path + ": malformed JSON" + where + ": " + simdjson::error_message(error));
  }
  return file;
}

std::string Where::str() const {
  if (!list) return "";
  std::string s = std::string(list) + "[" + std::to_string(index) + "]";
  if (inner) s += std::string(".") + inner + "[" + std::to_string(inner_index) + "]";
  return s;
}

void JsonFile::fail(const Where& where, const std::string& message) const {
  const std::string w = where.str();
  throw InputError(path_ + ": " + (w.empty() ? "" : w + ": ") + message);
}

void JsonFile::fail(const Where& where, const char* key, const std::string& message) const {
  const std::string w = where.str();
  throw InputError(path_ + ": " + (w.empty() ? "" : w + ".") + key + ": " + message);
}

bool JsonFile::has(simdjson::dom::element e, const char* key) const {
  simdjson::dom::element value;
  return e.is_object() && !e[key].get(value);
}

simdjson::dom::element JsonFile::field(simdjson::dom::element e, const char* key,
                                       const Where& where) const {
  if (!e.is_object()) fail(where, std::string("expected an object, got ") + type_name(e.type()));
  simdjson::dom::element value;
  if (e[key].get(value)) fail(where, std::string("missing field \"") + key + "\"");
  return value;
}

simdjson::dom::array JsonFile::array(simdjson::dom::element e, const char* key,
                                     const Where& where) const {
  const auto v = field(e, key, where);
  if (!v.is_array()) fail(where, key, "expected a list, got " + type_name(v.type()));
  return v.get_array().value_unsafe();
}

simdjson::dom::object JsonFile::object(simdjson::dom::element e, const char* key,
                                       const Where& where) const {
  const auto v = field(e, key, where);
  if (!v.is_object()) fail(where, key, "expected an object, got " + type_name(v.type()));
  return v.get_object().value_unsafe();
}

int64_t JsonFile::integer(simdjson::dom::element e, const char* key, const Where& where) const {
  const auto v = field(e, key, where);
  int64_t out = 0;
  if (v.get(out)) fail(where, key, "expected an integer, got " + type_name(v.type()));
  return out;
}

double JsonFile::number(simdjson::dom::element e, const char* key, const Where& where) const {
  const auto v = field(e, key, where);
  double out = 0;
  if (v.get(out)) fail(where, key, "expected a number, got " + type_name(v.type()));
  return out;
}

bool JsonFile::boolean(simdjson::dom::element e, const char* key, const Where& where) const {
  const auto v = field(e, key, where);
  bool out = false;
  if (v.get(out)) fail(where, key, "expected a bool, got " + type_name(v.type()));
  return out;
}

std::string JsonFile::string(simdjson::dom::element e, const char* key, const Where& where) const {
  const auto v = field(e, key, where);
  std::string_view out;
  if (v.get(out)) fail(where, key, "expected a string, got " + type_name(v.type()));
  return std::string(out);
}

}  // namespace xmodal::io
