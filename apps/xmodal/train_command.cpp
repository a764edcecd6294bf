// `xmodal train CONFIG [--set k=v ...] [--dump-config] [--run-dir DIR] [--resume RUN_DIR]`
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/train/launch.h"
#include "xmodal/train/run_folder.h"
#include "xmodal/train/trainer.h"

namespace xmodal::cli {
namespace {

struct TrainArgs {
  std::string config_path;
  std::vector<std::string> sets;
  bool dump_config = false;
  std::string run_dir;
  std::string resume;
  int64_t stop_after_steps = 0;
  int nproc = 1;
};

// This process's arguments without --nproc (the workers' command line).
std::vector<std::string> worker_arguments() {
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::vector<std::string> args;
  for (std::string arg; std::getline(in, arg, '\0');) args.push_back(arg);
  std::vector<std::string> kept;
  for (size_t i = 0; i < args.size(); ++i) {
    if (args[i] == "--nproc") {
      ++i;  // and its value
    } else if (args[i].rfind("--nproc=", 0) != 0) {
      kept.push_back(args[i]);
    }
  }
  return kept;
}

// The config of a resumed run: RUN_DIR/config.yaml plus --set. A CONFIG given as well must
// resolve to the same values (it is only a reminder of where the run came from).
config::Config resume_config(const TrainArgs& args, const std::vector<std::string>& sets) {
  const std::string saved = train::saved_run_config(args.resume);
  if (!std::filesystem::exists(saved)) {
    throw std::invalid_argument("--resume " + args.resume +
                                ": no config.yaml there (not a run directory)");
  }
  config::Config cfg = config::load_config(saved, sets, config::Folders::keep);
  if (!args.config_path.empty()) {
    const config::Config given = config::load_config(args.config_path, sets);
    const auto a = config::flatten(given);
    const auto b = config::flatten(cfg);
    std::string diff;
    for (size_t i = 0; i < a.size() && i < b.size(); ++i) {
      if (a[i].first != "run.dir" && a[i].second != b[i].second) {
        diff += (diff.empty() ? "" : ", ") + a[i].first + " (run: " + b[i].second + ", " +
                args.config_path + ": " + a[i].second + ")";
      }
    }
    if (!diff.empty()) {
      throw std::invalid_argument("--resume " + args.resume + ": " + args.config_path +
                                  " differs from the run's saved config in " + diff +
                                  "; drop CONFIG to resume with the saved one, or use --set");
    }
  }
  return cfg;
}

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
  cmd->add_option("--run-dir", args->run_dir, "Run directory (default: run.dir of the config)")
      ->check(non_empty());
  cmd->add_option("--resume", args->resume,
                  "Continue the run in RUN_DIR from its last valid checkpoint with the run's "
                  "saved config (default: start fresh)")
      ->check(non_empty());
  cmd->add_option("--stop-after-steps", args->stop_after_steps,
                  "Stop like SIGINT after N optimizer steps of this process, with a checkpoint "
                  "(for tests; default: 0 = off)")
      ->check(at_least(0));
  cmd->add_option("--nproc", args->nproc,
                  "Train with N local processes (data parallel over c10d, Gloo on the CPU); "
                  "each takes batch_size samples of every global batch (default: 1)")
      ->check(CLI::Range(1, 1024));
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      if (args->config_path.empty() && args->resume.empty()) {
        throw std::invalid_argument("train: give a config file (xmodal train CONFIG.yaml)");
      }
      std::vector<std::string> sets = args->sets;
      for (const auto& s : ctx.shared_overrides()) sets.push_back(s);
      if (!args->resume.empty()) {
        if (!args->run_dir.empty() && args->run_dir != args->resume) {
          throw std::invalid_argument("--run-dir and --resume name different directories");
        }
        sets.push_back("run.dir=" + config::detail::scalar_text(args->resume));
      } else if (!args->run_dir.empty()) {
        sets.push_back("run.dir=" + config::detail::scalar_text(args->run_dir));
      }
      const config::Config cfg = args->resume.empty() ? config::load_config(args->config_path, sets)
                                                      : resume_config(*args, sets);
      if (args->dump_config) {
        ctx.out << config::dump_config(cfg);
        return 0;
      }
      if (args->nproc > 1) {
        if (std::getenv("WORLD_SIZE") != nullptr) {
          throw std::invalid_argument(
              "--nproc starts its own processes; it cannot run under torchrun (WORLD_SIZE is set)");
        }
        config::validate(cfg);
        return train::launch_local(args->nproc, worker_arguments(), cfg.dist.timeout_s);
      }
      train::TrainOptions options;
      options.resume = !args->resume.empty();
      options.stop_after_steps = args->stop_after_steps;
      options.config_file = args->config_path;
      const auto result = train::train(cfg, options);
      if (result.interrupted && result.signal != 0) {
        ctx.err << "xmodal: training interrupted at step " << result.step << "/"
                << result.total_steps << "; resume with: xmodal train --resume " << result.run_dir
                << "\n";
      }
      return 0;
    };
  });
}

}  // namespace xmodal::cli
