// `xmodal plot RUN_DIR [--out FILE]`
#include <filesystem>
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/train/plot.h"

namespace xmodal::cli {

void add_plot_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string run_dir, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("plot", "Draw a run's loss and validation curves as a PNG");
  cmd->add_option("run_dir", args->run_dir, "Run directory (holds metrics.jsonl)")->required();
  cmd->add_option("--out", args->out, "PNG file to write (default: RUN_DIR/curves.png)")
      ->check(png_path());
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      const auto metrics = std::filesystem::path(args->run_dir) / "metrics.jsonl";
      if (!std::filesystem::exists(metrics)) {
        throw std::invalid_argument("plot: " + metrics.string() +
                                    " does not exist (not a run "
                                    "directory, or nothing logged yet)");
      }
      const std::string out = args->out.empty()
                                  ? (std::filesystem::path(args->run_dir) / "curves.png").string()
                                  : args->out;
      const auto s = train::plot_run(metrics.string(), out);
      ctx.out << "wrote " << out << " (" << s.train_points << " training and " << s.eval_points
              << " validation records)\n";
      return 0;
    };
  });
}

}  // namespace xmodal::cli
