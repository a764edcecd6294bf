// `xmodal eval --checkpoint CKPT [--split val|test] [--data-root DIR] [--out DIR]`
// `xmodal eval --checkpoint CKPT --zero-shot fashion_mnist [--zoom-out F] [--prompt T ...]`
#include <nlohmann/json.hpp>

#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/config/config.h"
#include "xmodal/eval/run.h"
#include "xmodal/eval/zero_shot.h"

namespace xmodal::cli {

void add_eval_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, split = "test", data_root, out, zero_shot, quantize, precision;
    int batch_size = 0, rerank_k = -1;
    double zoom_out = 0;
    std::vector<std::string> prompts;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "eval", "Evaluate a checkpoint on a split (counting, VQA, classify, retrieval R@K)");
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
  cmd->add_option("--rerank-k", args->rerank_k,
                  "retrieval with an ITM head: re-rank each query's top K contrastive candidates "
                  "by ITM + ITC, 0 = off (default: eval.rerank_k of the checkpoint)")
      ->check(at_least(0));
  add_quantize_option(cmd, args->quantize);
  add_precision_option(cmd, args->precision);
  cmd->add_option("--zero-shot", args->zero_shot,
                  "retrieval: classify the images of a data set with texts built from "
                  "eval.prompts instead: fashion_mnist (--data-root default "
                  "/usr/share/datasets/fashion-mnist) or image_folder (ROOT/SPLIT/CLASS/*)")
      ->check(CLI::IsMember({"fashion_mnist", "image_folder"}));
  cmd->add_option("--zoom-out", args->zoom_out,
                  "with --zero-shot: paste each image centred on a black canvas this many times "
                  "its side (3.43: Fashion-MNIST's 28-pixel articles at the scenes' scale; "
                  "default: 0 = off)");
  cmd->add_option("--prompt", args->prompts,
                  "with --zero-shot: a text template, {} the class name; one per --prompt, "
                  "repeatable (default: eval.prompts of the checkpoint)")
      ->allow_extra_args(false)
      ->check(non_empty());
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      // The config assignments both kinds of evaluation apply to the checkpoint's config.
      std::vector<std::string> overrides = ctx.shared_overrides();
      append_quantize(overrides, args->quantize);
      append_precision(overrides, args->precision);
      if (args->batch_size > 0)
        overrides.push_back("eval.batch_size=" + std::to_string(args->batch_size));
      if (!args->zero_shot.empty()) {
        eval::ZeroShotOptions z;
        z.checkpoint = args->checkpoint;
        z.dataset = args->zero_shot;
        z.data_root = args->data_root;
        z.split = args->split;
        z.zoom_out = args->zoom_out;
        z.out_dir = args->out;
        z.overrides = overrides;
        if (!args->prompts.empty()) {
          // A YAML flow list of JSON strings (valid YAML), so any text survives.
          z.overrides.push_back("eval.prompts=" + nlohmann::json(args->prompts).dump());
        }
        const auto s = eval::run_zero_shot(z);
        ctx.out << s.table << "wrote " << s.out_dir << " in " << static_cast<int>(s.seconds + 0.5)
                << " s\n";
        return 0;
      }
      if (args->zoom_out != 0) throw std::invalid_argument("eval: --zoom-out needs --zero-shot");
      if (!args->prompts.empty()) throw std::invalid_argument("eval: --prompt needs --zero-shot");
      eval::EvalOptions o;
      o.checkpoint = args->checkpoint;
      o.split = args->split;
      o.data_root = args->data_root;
      o.out_dir = args->out;
      o.overrides = overrides;
      if (args->rerank_k >= 0)
        o.overrides.push_back("eval.rerank_k=" + std::to_string(args->rerank_k));
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
