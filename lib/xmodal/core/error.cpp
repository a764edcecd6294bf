#include "xmodal/core/error.h"

#include <c10/util/Exception.h>

#include <exception>

#include "xmodal/core/strings.h"

namespace xmodal {

ConfigError::ConfigError(std::vector<std::string> problems)
    : UsageError(join(problems, "\n")), problems_(std::move(problems)) {}

namespace {

// `message` with each {name} replaced by name_of(name), and {{ and }} by single braces.
std::string fill_options(const std::string& message,
                         const std::function<std::string(const std::string&)>& name_of) {
  std::string out;
  for (size_t at = 0; at < message.size(); ++at) {
    const char c = message[at];
    if ((c == '{' || c == '}') && at + 1 < message.size() && message[at + 1] == c) {
      out += c;  // an escaped brace
      ++at;
      continue;
    }
    const size_t close = c == '{' ? message.find('}', at) : std::string::npos;
    if (close == std::string::npos) {
      out += c;
      continue;
    }
    out += name_of(message.substr(at + 1, close - at - 1));
    at = close;
  }
  return out;
}

std::string same_name(const std::string& name) { return name; }

}  // namespace

OptionError::OptionError(std::string context, std::string message)
    : UsageError((context.empty() ? "" : context + ": ") + fill_options(message, same_name)),
      context_(std::move(context)),
      message_(std::move(message)) {}

std::string OptionError::render(
    const std::function<std::string(const std::string&)>& name_of) const {
  return (context_.empty() ? "" : context_ + ": ") + fill_options(message_, name_of);
}

std::string OptionError::literal(const std::string& text) {
  std::string out;
  for (const char c : text) {
    out += c;
    if (c == '{' || c == '}') out += c;
  }
  return out;
}

std::string OptionError::pattern() const {
  return context_.empty() ? message_ : literal(context_) + ": " + message_;
}

std::vector<std::string> OptionError::options() const {
  std::vector<std::string> names;
  fill_options(message_, [&names](const std::string& name) {
    names.push_back(name);
    return name;
  });
  return names;
}

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

// An OptionError under `context` ("search: "): still an OptionError, its options still named.
void rethrow_option_error(const std::string& context, const std::exception& e) {
  const auto* option = dynamic_cast<const OptionError*>(&e);
  const std::string separator = ": ";
  if (option == nullptr || context.size() <= separator.size() ||
      context.compare(context.size() - separator.size(), separator.size(), separator) != 0) {
    return;
  }
  throw OptionError(context.substr(0, context.size() - separator.size()), option->pattern());
}

}  // namespace

void rethrow_in(const std::string& context, ErrorKind kind) {
  try {
    throw;
  } catch (const std::exception& e) {
    if (kind == ErrorKind::usage) rethrow_option_error(context, e);
    throw_as(kind, context + message_of(e));
  }
}

void rethrow_in(const std::string& context) {
  try {
    throw;
  } catch (const std::exception& e) {
    rethrow_option_error(context, e);
    throw_as(kind_of(e), context + message_of(e));
  }
}

}  // namespace xmodal
