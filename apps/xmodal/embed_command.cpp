// `xmodal embed (--config C | --checkpoint CKPT) [--image P ...] [--text T ...] [--input F]
//  --out F.safetensors`
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/core/strings.h"
#include "xmodal/infer/embed.h"

namespace xmodal::cli {

void add_embed_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<infer::EmbedOptions>();
  auto quantize = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "embed",
      "Write encoder features (final hidden states) of images and/or texts to safetensors");
  cmd->add_option("--config", args->config,
                  "YAML config: encoders from model.{vision,text}.pretrained (default: none)");
  cmd->add_option("--checkpoint", args->checkpoint,
                  "Trained checkpoint folder, RUN_DIR/best or a run folder (default: none)");
  cmd->add_option("--set", args->overrides, "Config override KEY=VALUE (repeatable)");
  cmd->add_option("--image", args->images, "Image file (repeatable; default: none)")
      ->check(non_empty());
  // One text per --text, taken as written: with extra arguments allowed, CLI11 would read a
  // text in brackets ("[CLS] a [SEP]") as a list and split it at its commas.
  cmd->add_option("--text", args->texts,
                  "Text, one per --text (repeatable; one per image, or one for all; default: "
                  "none)")
      ->allow_extra_args(false)
      ->check(non_empty());
  cmd->add_option("--input", args->input,
                  "JSONL file of {\"image\":...,\"text\":...} lines (default: none)");
  cmd->add_flag("--no-resize", args->no_resize,
                "Images are already data.image_size square: only normalise (default: off)");
  cmd->add_option("--batch-size", args->batch_size, "Inputs per forward pass (default: 32)")
      ->check(at_least(1));
  cmd->add_option("--pool", args->pool,
                  "Also write text_pooled, one L2-normalised vector per text: mean (of the real "
                  "tokens, as sentence-transformers) | cls | none (default: none)")
      ->check(CLI::IsMember({"none", "mean", "cls"}));
  cmd->add_option("--out", args->out, "Output .safetensors file")->required()->check(non_empty());
  add_quantize_option(cmd, *quantize);
  cmd->callback([&ctx, args, quantize] {
    ctx.action = [&ctx, args, quantize] {
      auto options = *args;
      const auto shared = ctx.shared_overrides();
      options.overrides.insert(options.overrides.end(), shared.begin(), shared.end());
      append_quantize(options.overrides, *quantize);
      if (!quantize->empty() && options.checkpoint.empty()) {
        throw std::invalid_argument("embed: --quantize needs --checkpoint");
      }
      const auto result = infer::embed(options);
      ctx.out << "embedded " << result.count << " input(s): " << join(result.tensors, ", ")
              << " -> " << options.out << "\n";
      return 0;
    };
  });
}

}  // namespace xmodal::cli
