#include "xmodal/core/error.h"

#include "xmodal/core/strings.h"

namespace xmodal {

ConfigError::ConfigError(std::vector<std::string> problems)
    : std::invalid_argument(join(problems, "\n")), problems_(std::move(problems)) {}

}  // namespace xmodal
