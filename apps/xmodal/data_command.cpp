// `xmodal data scenes --out DIR`: builds the offline default data set.
#include "xmodal/cli.h"

namespace xmodal::cli {

void add_data_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string kind = "scenes", out = "data/fashion-scenes";
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "data", "Build a data set: `scenes` composes Fashion-MNIST articles into COCO/VQA files");
  cmd->add_option("kind", args->kind, "Which data set to build (default: scenes)")
      ->check(CLI::IsMember({"scenes"}));
  cmd->add_option("--out", args->out, "Output folder (default: data/fashion-scenes)");
  cmd->callback(
      [&ctx, args] { ctx.action = []() -> int { not_yet("data", "issue 4: data sets"); }; });
}

}  // namespace xmodal::cli
