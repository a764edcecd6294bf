// `xmodal eval --checkpoint CKPT [--split val|test] [--data-root DIR] [--out DIR]`
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/config/config.h"
#include "xmodal/eval/run.h"

namespace xmodal::cli {

void add_eval_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, split = "test", data_root, out;
    int batch_size = 0;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("eval", "Evaluate a checkpoint on a COCO counting / VQA v2 split");
  cmd->add_option("--checkpoint", args->checkpoint,
                  "Checkpoint folder, RUN_DIR/best, RUN_DIR/last or a run folder (its newest "
                  "valid checkpoint)")
      ->required();
  cmd->add_option("--split", args->split, "Split to evaluate (default: test)");
  cmd->add_option("--data-root", args->data_root,
                  "Data set root (default: data.root saved in the checkpoint)");
  cmd->add_option("--out", args->out,
                  "Folder for metrics.json and results.json / predictions.jsonl (default: "
                  "RUN_DIR/eval/SPLIT-step-N)");
  cmd->add_option("--batch-size", args->batch_size,
                  "Samples per forward pass (default: eval.batch_size of the checkpoint)")
      ->check(at_least(0));
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      eval::EvalOptions o;
      o.checkpoint = args->checkpoint;
      o.split = args->split;
      o.data_root = args->data_root;
      o.out_dir = args->out;
      o.overrides = ctx.shared_overrides();
      if (args->batch_size > 0)
        o.overrides.push_back("eval.batch_size=" + std::to_string(args->batch_size));
      const auto s = eval::run_eval(o);
      ctx.out << "checkpoint " << s.checkpoint << " (step " << s.step << "), split " << o.split
              << "\n"
              << s.table << "wrote " << s.out_dir << " in " << static_cast<int>(s.seconds + 0.5)
              << " s\n";
      return 0;
    };
  });
}

}  // namespace xmodal::cli
