// `xmodal eval --checkpoint CKPT [--split val|test] [--data-root DIR] [--out DIR]`
#include "xmodal/cli.h"

namespace xmodal::cli {

void add_eval_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, split = "test", data_root, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint on a COCO counting / VQA v2 split");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder, e.g. RUN_DIR/best")
      ->required();
  cmd->add_option("--split", args->split, "Split to evaluate (default: test)");
  cmd->add_option("--data-root", args->data_root,
                  "Data set root (default: data.root saved in the checkpoint)");
  cmd->add_option("--out", args->out, "Folder for metrics and results (default: next to CKPT)");
  cmd->callback(
      [&ctx, args] { ctx.action = []() -> int { not_yet("eval", "issue 6: evaluation"); }; });
}

}  // namespace xmodal::cli
