// `xmodal predict --checkpoint CKPT --image PATH --text "..."` (or --input file.jsonl)
#include "xmodal/cli.h"

namespace xmodal::cli {

void add_predict_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, image, text, input, output;
    int top_k = 5;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("predict", "Predict for one image + text, or a JSONL batch");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder, e.g. RUN_DIR/best")
      ->required();
  cmd->add_option("--image", args->image, "Image file (default: none)");
  cmd->add_option("--text", args->text, "Question or caption (default: none)");
  cmd->add_option("--input", args->input,
                  "JSONL file of {\"image\":...,\"text\":...} lines, or - for stdin "
                  "(default: none)");
  cmd->add_option("--output", args->output, "Write JSONL here (default: stdout)");
  cmd->add_option("--top-k", args->top_k, "VQA answers to list (default: 5)")
      ->check(CLI::PositiveNumber);
  cmd->callback(
      [&ctx, args] { ctx.action = []() -> int { not_yet("predict", "issue 6: prediction"); }; });
}

}  // namespace xmodal::cli
