// `xmodal quantize --checkpoint CKPT --out DIR`: an int8 copy of a checkpoint.
#include <filesystem>
#include <ostream>

#include <fmt/format.h>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/cli.h"
#include "xmodal/core/logging.h"
#include "xmodal/infer/session.h"

namespace xmodal::cli {
namespace {

int64_t bytes_of(const std::filesystem::path& path) {
  std::error_code ec;
  const auto n = std::filesystem::file_size(path, ec);
  return ec ? -1 : static_cast<int64_t>(n);
}

}  // namespace

void add_quantize_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, out;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand(
      "quantize",
      "Write an int8 copy of a checkpoint: its Linear layers as int8 weights with per-row "
      "scales (docs/compression.md \"int8 inference\"); it loads without the float weights");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder, RUN_DIR/best or a run")
      ->required()
      ->check(non_empty());
  cmd->add_option("--out", args->out, "The new checkpoint folder (must not exist, or be empty)")
      ->required()
      ->check(non_empty());
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      // No --set: the copy keeps the checkpoint's config (write_model_dir adds eval.quantize).
      infer::SessionOptions opening(args->checkpoint, {}, "quantize");
      opening.quantize = config::Quantize::int8;
      opening.device = c10::Device(c10::kCPU);  // int8 layers run on the CPU only
      const checkpoint::LoadedModel m = infer::Session::open(opening).loaded;
      const std::string dir = checkpoint::write_model_dir(args->out, m);
      const int64_t before = bytes_of(std::filesystem::path(m.checkpoint) / "model.safetensors");
      const int64_t after = bytes_of(std::filesystem::path(dir) / "model.safetensors");
      ctx.out << fmt::format(
          "quantized {} (step {}) to int8: model.safetensors {:.2f} MB -> "
          "{:.2f} MB in {}\n",
          m.checkpoint, m.step, before / 1e6, after / 1e6, dir);
      return 0;
    };
  });
}

}  // namespace xmodal::cli
