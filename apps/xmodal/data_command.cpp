// `xmodal data scenes --out DIR [...]`: builds the offline default data set.
#include <chrono>
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/scenes.h"

namespace xmodal::cli {

void add_data_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string kind = "scenes";
    data::ScenesOptions scenes;
    std::string item_size = "22:34";
  };
  auto args = std::make_shared<Args>();
  auto& o = args->scenes;
  auto* cmd = app.add_subcommand(
      "data", "Build a data set: `scenes` composes Fashion-MNIST articles into COCO/VQA files");
  cmd->add_option("kind", args->kind, "Which data set to build (default: scenes)")
      ->check(CLI::IsMember({"scenes"}));
  cmd->add_option("--out", o.out, "Output folder (default: data/fashion-scenes)")
      ->check(non_empty());
  cmd->add_option("--train", o.train, "Training scenes (default: 10000)")->check(at_least(1));
  cmd->add_option("--val", o.val, "Validation scenes (default: 1000)")->check(at_least(1));
  cmd->add_option("--test", o.test, "Test scenes (default: 1000)")->check(at_least(1));
  cmd->add_option("--canvas", o.canvas, "Scene side in pixels (default: 96)")
      ->check(CLI::Range(16, 4096));
  cmd->add_option("--min-items", o.min_items, "Fewest articles per scene (default: 1)");
  cmd->add_option("--max-items", o.max_items, "Most articles per scene, <= 10 (default: 6)");
  cmd->add_option("--item-size", args->item_size,
                  "Article side range MIN:MAX in pixels (default: 22:34)");
  cmd->add_option("--captions", o.captions,
                  "What the captions say: partial (some classes, vague quantities) or full "
                  "(every class with its count) (default: partial)")
      ->check(CLI::IsMember({"partial", "full"}));
  cmd->add_flag("--overwrite", o.overwrite,
                "Replace a scenes set made with other options at --out (default: off)");
  cmd->add_option("--seed", o.seed, "Seed; the same seed gives the same bytes (default: 1234)");
  cmd->add_option(
      "--fashion-mnist", o.fashion_mnist,
      "Folder with Fashion-MNIST's IDX files (default: /usr/share/datasets/fashion-mnist, "
      "Debian package dataset-fashion-mnist)");
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      const auto colon = args->item_size.find(':');
      try {
        if (colon == std::string::npos) throw std::invalid_argument("");
        args->scenes.item_min = std::stoi(args->item_size.substr(0, colon));
        args->scenes.item_max = std::stoi(args->item_size.substr(colon + 1));
      } catch (const std::exception&) {
        throw std::invalid_argument("--item-size: expected MIN:MAX, e.g. 22:34, got '" +
                                    args->item_size + "'");
      }
      const auto start = std::chrono::steady_clock::now();
      const auto reports = data::build_scenes(args->scenes);
      const double seconds =
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
      if (reports.empty()) {  // the same set is already there
        ctx.out << args->scenes.out << " already holds this set; nothing to do\n";
        return 0;
      }
      int64_t scenes = 0, questions = 0;
      for (const auto& r : reports) {
        scenes += r.scenes;
        questions += r.questions;
      }
      log::info("[data] wrote {} scenes and {} questions to {} in {:.1f} s", scenes, questions,
                args->scenes.out, seconds);
      ctx.out << data::format_scenes_report(reports);
      return 0;
    };
  });
}

}  // namespace xmodal::cli
