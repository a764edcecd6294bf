// `xmodal embed --config c.yaml --image a.png --out f.safetensors`
#include "xmodal/cli.h"

namespace xmodal::cli {

void add_embed_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string config, checkpoint, image, text, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("embed", "Write encoder features of an image and/or text");
  cmd->add_option("--config", args->config, "YAML config (default: none)");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder (default: none)");
  cmd->add_option("--image", args->image, "Image file (default: none)");
  cmd->add_option("--text", args->text, "Text (default: none)");
  cmd->add_option("--out", args->out, "Output .safetensors file")->required();
  cmd->callback(
      [&ctx, args] { ctx.action = []() -> int { not_yet("embed", "no issue scheduled yet"); }; });
}

}  // namespace xmodal::cli
