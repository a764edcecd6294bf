// What an error is: its kind travels with it, and the kind alone decides the exit code of the
// CLI (and the status class a server answers with), so no layer catches an error to change its
// type.
//   usage    the command line, a config or an option is wrong          exit 2
//   input    a file or input the command reads cannot be used          exit 1
//            (missing, unreadable, malformed: an image, a vocabulary, a checkpoint)
//   runtime  anything else (a failed write, a model that fails)        exit 1
// The library throws; only main() catches. Every xmodal error type carries its kind (Error);
// for an exception from elsewhere, std::invalid_argument counts as usage and anything else as
// runtime (kind_of).
#pragma once

#include <functional>
#include <stdexcept>
#include <string>
#include <vector>

namespace xmodal {

enum class ErrorKind { usage, input, runtime };

/// The kind's name: usage, input, runtime.
const char* to_string(ErrorKind kind);

/// What every xmodal error type carries besides its standard base class.
class Error {
 public:
  explicit Error(ErrorKind kind) : kind_(kind) {}
  virtual ~Error() = default;
  ErrorKind kind() const noexcept { return kind_; }

 private:
  ErrorKind kind_;
};

/// The command line, a config or an option is wrong (a std::invalid_argument).
class UsageError : public std::invalid_argument, public Error {
 public:
  explicit UsageError(const std::string& message)
      : std::invalid_argument(message), Error(ErrorKind::usage) {}
};

/// A file or input that cannot be used (a std::runtime_error); the message names it.
class InputError : public std::runtime_error, public Error {
 public:
  explicit InputError(const std::string& message)
      : std::runtime_error(message), Error(ErrorKind::input) {}
};

/// A configuration with one or more problems. what() holds one problem per line, each naming
/// the file and line (or `--set`), the full key, what was found and what was expected.
class ConfigError : public UsageError {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// An option of a library call with a bad value or combination (usage). The message names each
/// option by its library name, the field of the call's options struct, written {name} ("give
/// exactly one of {images} and {split}"); what() prints the names as they are ("index: give
/// exactly one of images and split"), and a front end restates them in its own terms (the CLI as
/// its flags, apps/xmodal/cli.cpp: "--images", "--split"). The library never names a CLI flag.
class OptionError : public UsageError {
 public:
  /// `context`: the call ("index", "serve"; "": none); `message` with {name} for each option, and
  /// every value in it (a path, a user's text) passed through literal().
  OptionError(std::string context, std::string message);
  /// `text` with its braces escaped ({{, }}), to be part of a message as it is.
  static std::string literal(const std::string& text);
  /// The message with every {name} replaced by name_of(name), after the context.
  std::string render(const std::function<std::string(const std::string&)>& name_of) const;
  /// The context and the message as given, options still {name} (to be put in another context).
  std::string pattern() const;
  /// The option names the message mentions, in order.
  std::vector<std::string> options() const;

 private:
  std::string context_, message_;
};

/// A feature whose issue has not landed yet: usage, reported in one line.
class NotImplementedError : public std::runtime_error, public Error {
 public:
  explicit NotImplementedError(const std::string& message)
      : std::runtime_error(message), Error(ErrorKind::usage) {}
};

/// The kind of any exception: an xmodal error's own; std::invalid_argument: usage; else runtime.
ErrorKind kind_of(const std::exception& e) noexcept;

/// The exit code of an error of this kind: usage 2, input and runtime 1.
int exit_code(ErrorKind kind) noexcept;

/// For a catch block that adds where an error happened: the exception being handled, thrown
/// again as an error of `kind` with `context` before its message ("vocab.txt: " + what). An
/// OptionError stays one (its options still named) where the kind is usage and `context` ends
/// in ": ".
[[noreturn]] void rethrow_in(const std::string& context, ErrorKind kind);
/// The same, keeping the kind the exception had.
[[noreturn]] void rethrow_in(const std::string& context);

}  // namespace xmodal
