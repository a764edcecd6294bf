// `xmodal ceiling --classifier CKPT [--model VQA_CKPT] [--root DIR] [--split S]`: the VQA
// accuracy that a given image classifier's recognition of single articles permits on the scenes,
// and how well a trained VQA model perceives the scenes itself (eval/ceiling.h).
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/core/runtime.h"
#include "xmodal/eval/ceiling.h"

namespace xmodal::cli {

void add_ceiling_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<eval::CeilingOptions>();
  auto* cmd = app.add_subcommand(
      "ceiling",
      "The scenes' VQA accuracy that an image classifier permits (its labels for every article, "
      "cut out at the true boxes, and exact reasoning over them), and how well a trained VQA "
      "model perceives the scenes itself");
  cmd->add_option("--classifier", args->classifier,
                  "A task: classify checkpoint or run directory (e.g. runs/pretrain_fashion)")
      ->check(non_empty());
  cmd->add_option("--model", args->model,
                  "A trained scenes VQA checkpoint: its own answers to \"is there a X?\" and \"how "
                  "many X are there?\" for every category of every scene, scored like the "
                  "classifier's labels")
      ->check(non_empty());
  cmd->add_option("--root", args->root, "The scenes set (default: data/fashion-scenes)")
      ->check(non_empty());
  cmd->add_option("--split", args->split, "Split to answer (default: test)")->check(non_empty());
  cmd->add_option("--prior-split", args->prior_split,
                  "Split whose answers give the text-only prior; \"\" = none (default: train)");
  cmd->add_option("--batch-size", args->batch_size, "Articles per forward pass (default: 256)")
      ->check(at_least(1));
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      configure_threads(ctx.threads.value_or(0));
      const auto r = eval::measure_ceiling(*args);
      ctx.out << (args->classifier.empty() ? "perception of " + args->model
                                           : "ceiling of " + args->classifier)
              << " on " << args->root << " " << args->split << ":\n\n"
              << eval::format_ceiling(r);
      return 0;
    };
  });
}

}  // namespace xmodal::cli
