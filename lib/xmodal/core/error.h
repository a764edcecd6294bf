// Error types shared by the library and the CLI.
//
// The library throws; only main() catches. std::invalid_argument (and the classes below that
// derive from it) means "the user's input is wrong" and exits 2; anything else exits 1.
#pragma once

#include <stdexcept>
#include <string>
#include <vector>

namespace xmodal {

/// A configuration with one or more problems. what() holds one problem per line, each naming
/// the file and line (or `--set`), the full key, what was found and what was expected.
class ConfigError : public std::invalid_argument {
 public:
  explicit ConfigError(std::vector<std::string> problems);
  const std::vector<std::string>& problems() const { return problems_; }

 private:
  std::vector<std::string> problems_;
};

/// A feature whose issue has not landed yet. The CLI reports it in one line and exits 2.
class NotImplementedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

}  // namespace xmodal
