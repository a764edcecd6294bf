// `xmodal train CONFIG [--set k=v ...] [--dump-config] [--run-dir DIR] [--resume RUN_DIR]`
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/config/loader.h"

namespace xmodal::cli {
namespace {

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> sets;
  bool dump_config = false;
  std::string run_dir;
  std::string resume;
};

}  // namespace

void add_train_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<TrainArgs>();
  auto* cmd = app.add_subcommand("train", "Train a model from a YAML config");
  cmd->add_option("config", args->config_path, "YAML config file (e.g. configs/quickstart.yaml)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", args->sets,
                  "Override a config key, e.g. --set train.lr=1e-3 (repeatable; applied after "
                  "the file, in order) (default: none)")
      ->allow_extra_args(false);
  cmd->add_flag("--dump-config", args->dump_config,
                "Print the resolved config as YAML and exit (default: off)");
  cmd->add_option("--run-dir", args->run_dir, "Run directory (default: run.dir of the config)");
  cmd->add_option("--resume", args->resume,
                  "Continue the run in RUN_DIR from its last checkpoint (default: start fresh)");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      if (args->config_path.empty() && args->resume.empty()) {
        throw std::invalid_argument("train: give a config file (xmodal train CONFIG.yaml)");
      }
      std::vector<std::string> sets = args->sets;
      for (const auto& s : ctx.shared_overrides()) sets.push_back(s);
      if (!args->run_dir.empty()) {
        sets.push_back("run.dir=" + config::detail::scalar_text(args->run_dir));
      }
      const config::Config cfg = config::load_config(args->config_path, sets);
      if (args->dump_config) {
        ctx.out << config::dump_config(cfg);
        return 0;
      }
      not_yet("train", "issue 5: training; the config is valid, see it with --dump-config");
    };
  });
}

}  // namespace xmodal::cli
