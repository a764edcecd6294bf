// `xmodal score --results r.json --annotations a.json --questions q.json`
#include "xmodal/cli.h"

namespace xmodal::cli {

void add_score_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string results, annotations, questions;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("score", "Official VQA accuracy of any results file");
  cmd->add_option("--results", args->results, "[{\"question_id\":..., \"answer\":...}] JSON")
      ->required();
  cmd->add_option("--annotations", args->annotations, "VQA v2 annotations JSON")->required();
  cmd->add_option("--questions", args->questions,
                  "VQA v2 questions JSON (default: none; needed for per-question-type tables)");
  cmd->callback(
      [&ctx, args] { ctx.action = []() -> int { not_yet("score", "issue 6: evaluation"); }; });
}

}  // namespace xmodal::cli
