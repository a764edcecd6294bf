// `xmodal explain --checkpoint CKPT --image a.png --text "..." [--out heat.png]`
// `xmodal explain --checkpoint CKPT --input lines.jsonl --out DIR` (DIR/line_N.png + index.html)
// `xmodal explain --evaluate --checkpoint CKPT [--split test] [--method M,...] [--limit N]`
#include <nlohmann/json.hpp>

#include <filesystem>
#include <ostream>

#include "xmodal/cli.h"
#include "xmodal/eval/explanation.h"
#include "xmodal/infer/json.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::cli {
namespace {

nlohmann::json explanation_json(const infer::Explanation& e, const std::string& heat_map) {
  auto j = infer::to_json(e);
  j["heat_map"] = heat_map;
  return j;
}

std::string html_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

// --input F --out DIR: one PNG per line and DIR/index.html showing them side by side.
int explain_batch(Context& ctx, infer::Predictor& predictor, const std::string& input,
                  const std::string& dir, const std::string& method) {
  namespace fs = std::filesystem;
  std::error_code ec;
  if (fs::exists(fs::symlink_status(dir, ec)) && !fs::is_directory(fs::symlink_status(dir, ec))) {
    throw std::invalid_argument("explain --out " + dir +
                                ": with --input, --out names a folder, and this is a file");
  }
  // The folder is new, empty, or an earlier batch's (line_N.png and index.html, replaced):
  // anything else in it is the user's and is never overwritten
  if (fs::is_directory(fs::symlink_status(dir, ec))) {
    for (const auto& entry : fs::directory_iterator(dir, ec)) {
      const std::string name = entry.path().filename().string();
      const bool ours =
          name == "index.html" || (name.rfind("line_", 0) == 0 && name.size() > 9 &&
                                   name.compare(name.size() - 4, 4, ".png") == 0 &&
                                   name.find_first_not_of("0123456789", 5) == name.size() - 4);
      if (!ours) {
        throw std::invalid_argument("explain --out " + dir + " holds other files (" + name +
                                    "); give a new or empty folder");
      }
    }
  }
  const auto lines = read_input_lines(input);
  fs::create_directories(dir, ec);
  if (ec) throw std::runtime_error("explain --out " + dir + ": cannot create: " + ec.message());
  std::string cards;
  int failed = 0;
  int64_t first_failed = 0;
  for (const auto& line : lines) {
    nlohmann::json j = {{"line", line.number}, {"image", line.image}, {"text", line.text}};
    const std::string name = "line_" + std::to_string(line.number) + ".png";
    try {
      if (!line.error.empty()) throw std::invalid_argument(line.error);
      const auto e = predictor.explain(infer::Input{line.image, line.text}, method);
      const std::string png = (fs::path(dir) / name).string();
      infer::write_heat_map(line.image, e, png);
      j.update(explanation_json(e, png));
      cards += "<figure><img src=\"" + name + "\" alt=\"line " + std::to_string(line.number) +
               "\"><figcaption><b>" + html_escape(line.text) + "</b><br>" + html_escape(e.answer) +
               " (" + std::to_string(e.probability).substr(0, 5) + ") &middot; line " +
               std::to_string(line.number) + "</figcaption></figure>\n";
    } catch (const std::exception& err) {
      if (failed++ == 0) first_failed = line.number;
      j["error"] = err.what();
      cards += "<figure class=\"error\"><figcaption>line " + std::to_string(line.number) + ": " +
               html_escape(err.what()) + "</figcaption></figure>\n";
    }
    ctx.out << infer::dump_line(j) << "\n";
  }
  const std::string html =
      "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>xmodal explain</title>\n"
      "<style>body{font-family:sans-serif;margin:16px}main{display:flex;flex-wrap:wrap;gap:12px}"
      "figure{margin:0;max-width:660px}img{width:100%}figcaption{font-size:14px}"
      ".error{color:#a00}</style></head><body>\n<h1>xmodal explain (" +
      html_escape(method) + ")</h1>\n<p>" + std::to_string(lines.size()) + " lines of " +
      html_escape(input) + "; " + std::to_string(failed) + " failed</p>\n<main>\n" + cards +
      "</main></body></html>\n";
  io::write_file_atomic((fs::path(dir) / "index.html").string(), html);
  if (failed > 0) {  // every line is written; the exit code says not all succeeded
    throw std::runtime_error(std::to_string(failed) + " of " + std::to_string(lines.size()) +
                             " inputs failed (error objects in the output, the first for line " +
                             std::to_string(first_failed) + ")");
  }
  return 0;
}

}  // namespace

void add_explain_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, image, text, input, out, quantize, precision, split = "test", metrics;
    std::vector<std::string> methods;
    bool evaluate = false, no_curves = false;
    int64_t limit = 1000;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("explain",
                                 "Heat map of the image patches and words a prediction rests on");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder, RUN_DIR/best or a run")
      ->required();
  cmd->add_option("--image", args->image, "Image file")->check(non_empty());
  cmd->add_option("--text", args->text, "Question or caption")->check(non_empty());
  cmd->add_option("--input", args->input,
                  "JSONL file of {\"image\":...,\"text\":...} lines (- = stdin): one PNG per "
                  "line and index.html in the --out folder (default: none)")
      ->check(non_empty());
  cmd->add_option("--out", args->out,
                  "Output PNG (default: explain.png); with --input a folder (default: explain)")
      ->check(non_empty());
  cmd->add_option("--method", args->methods,
                  std::string("rollout (attention rollout of the fusion) | chefer (Chefer et al. "
                              "2021: gradient-weighted relevance through every attention "
                              "layer) | gradient (the old name of chefer); with --evaluate a "
                              "list (default: ") +
                      infer::kDefaultExplainMethod + "; --evaluate: rollout,chefer)")
      ->delimiter(',')
      ->check(CLI::IsMember({"chefer", "gradient", "rollout"}));
  cmd->add_flag("--evaluate", args->evaluate,
                "Score the methods on a split with boxes: pointing game, energy in boxes, "
                "deletion / insertion curves (default: off)");
  cmd->add_option("--split", args->split, "--evaluate: the split (default: test)")
      ->check(non_empty());
  cmd->add_option("--limit", args->limit,
                  "--evaluate: questions, a seeded sample; 0 = all (default: 1000)")
      ->check(at_least(0));
  cmd->add_option("--metrics", args->metrics, "--evaluate: also write the figures as JSON here")
      ->check(non_empty());
  cmd->add_flag("--no-curves", args->no_curves,
                "--evaluate: skip the deletion / insertion curves (default: off)");
  add_quantize_option(cmd, args->quantize);
  add_precision_option(cmd, args->precision);
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      std::vector<std::string> overrides = ctx.shared_overrides();
      append_quantize(overrides, args->quantize);
      append_precision(overrides, args->precision);
      if (args->evaluate) {
        if (!args->image.empty() || !args->text.empty() || !args->input.empty() ||
            !args->out.empty()) {
          throw std::invalid_argument(
              "explain --evaluate reads the split's questions; it takes no --image, --text, "
              "--input or --out (--metrics FILE writes the figures)");
        }
        eval::ExplanationEvalOptions o;
        o.checkpoint = args->checkpoint;
        o.overrides = overrides;
        o.split = args->split;
        if (!args->methods.empty()) o.methods = args->methods;
        o.limit = args->limit;
        o.curves = !args->no_curves;
        const auto result = eval::evaluate_explanations(o);
        if (!args->metrics.empty()) {
          io::write_file_atomic(args->metrics, eval::explanation_json(result));
        }
        ctx.out << eval::format_explanation_table(result);
        return 0;
      }
      if (args->methods.size() > 1) {
        throw std::invalid_argument("explain: one --method at a time (lists are for --evaluate)");
      }
      const std::string method =
          args->methods.empty() ? std::string(infer::kDefaultExplainMethod) : args->methods[0];
      const bool single = !args->image.empty() || !args->text.empty();
      if (single == !args->input.empty()) {
        throw std::invalid_argument(
            "explain: give --image and --text, --input FILE, or --evaluate");
      }
      if (single && (args->image.empty() || args->text.empty())) {
        throw std::invalid_argument("explain: --image and --text go together");
      }
      infer::PredictorOptions o;
      o.checkpoint = args->checkpoint;
      o.overrides = overrides;
      infer::Predictor predictor(o);
      if (!single) {
        return explain_batch(ctx, predictor, args->input,
                             args->out.empty() ? std::string("explain") : args->out, method);
      }
      const std::string out = args->out.empty() ? std::string("explain.png") : args->out;
      if (const std::string why = png_path()(std::string(out)); !why.empty()) {
        throw std::invalid_argument("explain --out " + why);
      }
      const auto e = predictor.explain({args->image, args->text}, method);
      infer::write_heat_map(args->image, e, out);
      ctx.out << explanation_json(e, out).dump() << "\n";
      return 0;
    };
  });
}

}  // namespace xmodal::cli
