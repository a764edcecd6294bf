// `xmodal predict --checkpoint CKPT --image PATH --text "..."` (or --input file.jsonl)
#include <nlohmann/json.hpp>

#include <algorithm>
#include <fstream>
#include <iostream>
#include <ostream>
#include <sstream>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/cli.h"
#include "xmodal/infer/json.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/task.h"

namespace xmodal::cli {
void add_predict_command(CLI::App& app, Context& ctx) {
  struct Args {
    std::string checkpoint, image, text, input, output, labels, quantize, precision;
    int top_k = 5;
  };
  auto args = std::make_shared<Args>();
  auto* cmd = app.add_subcommand("predict", "Predict for one image + text, or a JSONL batch");
  cmd->add_option("--checkpoint", args->checkpoint,
                  "Checkpoint folder, RUN_DIR/best or a run folder")
      ->required();
  cmd->add_option("--image", args->image, "Image file (default: none)")->check(non_empty());
  cmd->add_option("--text", args->text, "Question or caption (default: none)")->check(non_empty());
  cmd->add_option("--input", args->input,
                  "JSONL file of {\"image\":...,\"text\":...} lines, or - for stdin "
                  "(default: none)")
      ->check(non_empty());
  cmd->add_option("--output", args->output, "Write JSONL here (default: stdout)")
      ->check(non_empty());
  cmd->add_option("--top-k", args->top_k, "VQA answers or classes to list (default: 5)")
      ->check(at_least(1));
  cmd->add_option("--labels", args->labels,
                  "retrieval: comma-separated labels to rank for each image, zero-shot with the "
                  "checkpoint's eval.prompts (then --text is optional; default: none)")
      ->check(non_empty());
  add_quantize_option(cmd, args->quantize);
  add_precision_option(cmd, args->precision);
  cmd->callback([&ctx, args] {
    ctx.action = [&ctx, args] {
      const bool single = !args->image.empty() || !args->text.empty();
      if (single == !args->input.empty()) {
        throw std::invalid_argument("predict: give either --image and --text, or --input FILE");
      }
      if (single && args->image.empty()) {
        throw std::invalid_argument("predict: --text needs --image");
      }
      std::vector<InputLine> lines;
      if (single) {
        lines.push_back({1, args->image, args->text, ""});
      } else {
        lines = read_input_lines(args->input);
      }
      infer::PredictorOptions o;
      o.checkpoint = args->checkpoint;
      o.overrides = ctx.shared_overrides();
      append_quantize(o.overrides, args->quantize);
      append_precision(o.overrides, args->precision);
      o.top_k = args->top_k;
      for (size_t at = 0; !args->labels.empty() && at <= args->labels.size();) {
        const size_t comma = std::min(args->labels.find(',', at), args->labels.size());
        const std::string label = args->labels.substr(at, comma - at);
        if (label.find_first_not_of(' ') == std::string::npos) {
          throw std::invalid_argument("predict: --labels has an empty label");
        }
        const std::string name = label.substr(label.find_first_not_of(' '));
        if (std::find(o.labels.begin(), o.labels.end(), name) != o.labels.end()) {
          // two equal labels would split one label's probability between them
          throw std::invalid_argument("predict: --labels names '" + name + "' twice");
        }
        o.labels.push_back(name);
        at = comma + 1;
      }
      infer::Predictor predictor(o);
      if (single && args->text.empty() && o.labels.empty() &&
          tasks::task(predictor.loaded().config.task).reads_text()) {  // as a missing --image
        throw std::invalid_argument("predict: this " +
                                    config::to_string(predictor.loaded().config.task) +
                                    " model needs --text");
      }
      std::vector<infer::Input> inputs;
      for (const auto& line : lines) {
        if (line.error.empty()) inputs.push_back({line.image, line.text});
      }
      const auto results = predictor.predict(inputs);
      std::string text;
      int errors = 0;
      int64_t first_error_line = 0;
      for (size_t i = 0, next = 0; i < lines.size(); ++i) {
        // an input line that could not be read is failed as it stands; the others have a result
        nlohmann::json j;
        std::string error = lines[i].error;
        if (error.empty()) {
          const infer::Prediction& p = results.at(next++);
          error = p.error;
          j = infer::to_json(p);
        } else {
          j = infer::error_json(error);
        }
        if (!error.empty() && errors++ == 0) first_error_line = lines[i].number;
        if (single && !error.empty()) throw std::runtime_error(error);  // a plain line, exit 1
        if (!single) j["line"] = lines[i].number;  // batch mode: which input line it answers
        text += infer::dump_line(j) + "\n";
      }
      if (args->output.empty()) {
        ctx.out << text << std::flush;
      } else {
        io::write_file_atomic(args->output, text);
      }
      if (errors > 0) {  // every result is written; the exit code says not all succeeded
        throw std::runtime_error(std::to_string(errors) + " of " + std::to_string(lines.size()) +
                                 " inputs failed (error objects in the output, the first for "
                                 "line " +
                                 std::to_string(first_error_line) + ")");
      }
      return 0;
    };
  });
}

}  // namespace xmodal::cli
