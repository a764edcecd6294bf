// `xmodal serve` in a build configured with -DXMODAL_WITH_SERVE=OFF: the command is listed and
// says, in one line, that this build lacks it (exit 2), whatever its arguments.
#include <stdexcept>

#include "xmodal/cli.h"

namespace xmodal::cli {

void add_serve_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand("serve", "HTTP/JSON inference server (not in this build)");
  cmd->allow_extras();
  cmd->callback([&ctx] {
    ctx.action = []() -> int {
      throw std::invalid_argument(
          "xmodal serve is not in this build (configured with -DXMODAL_WITH_SERVE=OFF)");
    };
  });
}

}  // namespace xmodal::cli
