// `xmodal info`: what this build runs on (LibTorch, BLAS, threads, devices).
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/cpu.h"
#include "xmodal/core/runtime.h"
#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"

namespace xmodal::cli {

void add_info_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "info", "Print the LibTorch version, the BLAS in use, thread counts and devices");
  struct Args {
    bool bench = false;
    std::string config;
    std::vector<std::string> sets;
    int64_t vocab_size = 1000;
    int64_t classes = 100;
  };
  auto args = std::make_shared<Args>();
  cmd->add_flag(
      "--bench", args->bench,
      "Also measure the fp32 matrix-product rate (1024^3, ~1.5 s), routed and on the BLAS "
      "kernel alone (default: off)");
  cmd->add_option("--config", args->config,
                  "Also print the model this config builds: its tree and parameter counts "
                  "(default: none)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--set", args->sets, "Override a key of --config (repeatable) (default: none)");
  cmd->add_option("--vocab-size", args->vocab_size,
                  "Vocabulary assumed for --config; the data fixes it at train time "
                  "(default: 1000)")
      ->check(at_least(1));
  cmd->add_option("--classes", args->classes,
                  "Answers (vqa) or categories (counting) assumed for --config (default: 100)")
      ->check(at_least(1));
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      configure_threads(ctx.threads.value_or(0));
      if (ctx.device) resolve_device(*ctx.device);  // a bad --device is an error here too
      for (const auto& line : runtime_summary()) ctx.out << line << "\n";
      if (args->bench) {
        ctx.out << "fp32 matmul 1024^3: " << static_cast<int>(measure_matmul_gflops(1024, 1.0))
                << " GFLOP/s (as LibTorch's products run; the BLAS kernel alone: "
                << static_cast<int>(measure_matmul_gflops(1024, 0.5, /*blas_only=*/true))
                << " GFLOP/s)\n";
        const auto& cpu = cpu_info();
        ctx.out << "bf16 matmul 1024^3: " << static_cast<int>(measure_bf16_matmul_gflops(1024, 1.0))
                << " GFLOP/s ("
                << (cpu.has("amx_bf16")      ? "AMX"
                    : cpu.has("avx512_bf16") ? "AVX512-BF16"
                                             : "no native bf16 products on this CPU")
                << ")\n";
      }
      if (!args->config.empty()) {
        const auto cfg = config::load_config(args->config, args->sets);
        const auto model = tasks::build_model(cfg, {args->vocab_size, args->classes});
        ctx.out << "\nmodel of " << args->config << " (task " << config::to_string(cfg.task)
                << ", fusion " << config::to_string(cfg.model.fusion.mode) << "; assuming vocab "
                << args->vocab_size << " and " << args->classes << " classes):\n"
                << models::describe_model(*model);
      }
      return 0;
    };
  });
}

}  // namespace xmodal::cli
