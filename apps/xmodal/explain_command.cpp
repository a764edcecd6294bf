// `xmodal explain --checkpoint CKPT --image a.png --text "..." --out heat.png`
#include <nlohmann/json.hpp>

#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/infer/predictor.h"

namespace xmodal::cli {

void add_explain_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, image, text, out = "explain.png", method = "gradient", quantize;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("explain",
                                 "Heat map of the image patches and words a prediction rests on");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder, RUN_DIR/best or a run")
      ->required();
  cmd->add_option("--image", args->image, "Image file")->required()->check(non_empty());
  cmd->add_option("--text", args->text, "Question or caption")->required()->check(non_empty());
  cmd->add_option("--out", args->out, "Output PNG (default: explain.png)")->check(png_path());
  cmd->add_option("--method", args->method,
                  "gradient (gradient-weighted attention rollout, answer-specific) | rollout "
                  "(plain attention rollout) (default: gradient)")
      ->check(CLI::IsMember({"gradient", "rollout"}));
  add_quantize_option(cmd, args->quantize);
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      infer::PredictorOptions o;
      o.checkpoint = args->checkpoint;
      o.overrides = ctx.shared_overrides();
      append_quantize(o.overrides, args->quantize);
      infer::Predictor predictor(o);
      const auto e = predictor.explain({args->image, args->text}, args->method);
      infer::write_heat_map(args->image, e, args->out);
      nlohmann::json tokens = nlohmann::json::array();
      for (size_t i = 0; i < e.tokens.size(); ++i) {
        tokens.push_back({{"token", e.tokens[i]}, {"weight", e.token_weights[i]}});
      }
      double image_share = 0;
      for (double w : e.patch_weights) image_share += w;
      ctx.out << nlohmann::json{{"answer", e.answer}, {"probability", e.probability},
                                {"method", e.method}, {"image_weight", image_share},
                                {"grid", e.grid},     {"patch_weights", e.patch_weights},
                                {"tokens", tokens},   {"heat_map", args->out}}
                     .dump()
              << "\n";
      return 0;
    };
  });
}

}  // namespace xmodal::cli
