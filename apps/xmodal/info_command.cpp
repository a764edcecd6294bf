// `xmodal info`: what this build runs on (LibTorch, BLAS, threads, devices).
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/core/runtime.h"

namespace xmodal::cli {

void add_info_command(CLI::App& app, Context& ctx) {
  auto* cmd = app.add_subcommand(
      "info", "Print the LibTorch version, the BLAS in use, thread counts and devices");
  auto bench = std::make_shared<bool>(false);
  cmd->add_flag("--bench", *bench,
                "Also measure the fp32 matrix-product rate (1024^3, ~1 s) (default: off)");
  cmd->callback([&ctx, bench] {
    ctx.action = [&ctx, bench] {
      configure_threads(ctx.threads.value_or(0));
      if (ctx.device) resolve_device(*ctx.device);  // a bad --device is an error here too
      for (const auto& line : runtime_summary()) ctx.out << line << "\n";
      if (*bench) {
        ctx.out << "fp32 matmul 1024^3: " << static_cast<int>(measure_matmul_gflops(1024, 1.0))
                << " GFLOP/s\n";
      }
      return 0;
    };
  });
}

}  // namespace xmodal::cli
