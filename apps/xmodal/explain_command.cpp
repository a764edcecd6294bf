// `xmodal explain --checkpoint CKPT --image a.png --text "..." --out heat.png`
#include "xmodal/cli.h"

namespace xmodal::cli {

void add_explain_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, image, text, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("explain", "Heat map of the image regions a prediction used");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder")->required();
  cmd->add_option("--image", args->image, "Image file")->required();
  cmd->add_option("--text", args->text, "Question or caption")->required();
  cmd->add_option("--out", args->out, "Output image (default: explain.png)");
  cmd->callback([&ctx, args] {
    ctx.action = []() -> int { not_yet("explain", "issue 6: evaluation and prediction"); };
  });
}

}  // namespace xmodal::cli
