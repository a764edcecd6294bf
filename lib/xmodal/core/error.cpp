#include "xmodal/core/error.h"

#include <c10/util/Exception.h>

#include <exception>

#include "xmodal/core/strings.h"

namespace xmodal {

ConfigError::ConfigError(std::vector<std::string> problems)
    : UsageError(join(problems, "\n")), problems_(std::move(problems)) {}

const char* to_string(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::usage:
      return "usage";
    case ErrorKind::input:
      return "input";
    case ErrorKind::runtime:
      break;
  }
  return "runtime";
}

ErrorKind kind_of(const std::exception& e) noexcept {
  if (const auto* error = dynamic_cast<const Error*>(&e)) return error->kind();
  if (dynamic_cast<const std::invalid_argument*>(&e) != nullptr) return ErrorKind::usage;
  return ErrorKind::runtime;
}

int exit_code(ErrorKind kind) noexcept { return kind == ErrorKind::usage ? 2 : 1; }

namespace {

[[noreturn]] void throw_as(ErrorKind kind, const std::string& message) {
  switch (kind) {
    case ErrorKind::usage:
      throw UsageError(message);
    case ErrorKind::input:
      throw InputError(message);
    case ErrorKind::runtime:
      break;
  }
  throw std::runtime_error(message);
}

// An exception's message (a LibTorch error's without its C++ stack trace).
std::string message_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) return c10->what_without_backtrace();
  return e.what();
}

}  // namespace

void rethrow_in(const std::string& context, ErrorKind kind) {
  try {
    throw;
  } catch (const std::exception& e) {
    throw_as(kind, context + message_of(e));
  }
}

void rethrow_in(const std::string& context) {
  try {
    throw;
  } catch (const std::exception& e) {
    throw_as(kind_of(e), context + message_of(e));
  }
}

}  // namespace xmodal
