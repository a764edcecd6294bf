// The `xmodal` command line: one CLI11 app, one file per subcommand.
//
// Each subcommand file adds its options and, when chosen, sets Context::action to a function
// that loads what it needs and calls one library function. run() parses, sets up logging and
// threads, runs the action and turns exceptions into one line and an exit code:
//   0 success, 2 usage or configuration error (std::invalid_argument) or a command whose issue
//   has not landed, 1 runtime failure.
#pragma once

#include <CLI/CLI.hpp>

#include <cstdint>
#include <functional>
#include <iosfwd>
#include <optional>
#include <streambuf>
#include <string>
#include <vector>

namespace xmodal::cli {

/// State shared by all subcommands: the output streams and the shared flags.
struct Context {
  Context(std::ostream& out_stream, std::ostream& err_stream) : out(out_stream), err(err_stream) {}

  std::ostream& out;
  std::ostream& err;
  std::string log_level = "info";     ///< --log-level
  std::string log_file;               ///< --log-file ("" = console only)
  std::optional<int> threads;         ///< --threads (unset: run.threads from the config, else all)
  std::optional<std::string> device;  ///< --device (unset: run.device from the config)
  std::function<int()> action;        ///< set by the chosen subcommand

  /// "--set"-style assignments for the shared flags, to append after the user's --set list.
  std::vector<std::string> shared_overrides() const;
};

/// stdout as a stream buffer over file descriptor 1 that keeps the errno of a failed write, so
/// that "writing the results to stdout failed" can say why (iostreams keep only a bad bit).
class StdoutBuffer : public std::streambuf {
 public:
  StdoutBuffer() { setp(buffer_, buffer_ + sizeof buffer_); }
  ~StdoutBuffer() override { sync(); }
  int last_error() const { return last_error_; }

 protected:
  int_type overflow(int_type c) override;
  int sync() override;

 private:
  bool flush_buffer();
  char buffer_[1 << 15];
  int last_error_ = 0;
};

/// Parses argv and runs the chosen subcommand. Returns the process exit code.
int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err);

// One per subcommand file.
void add_info_command(CLI::App& app, Context& ctx);
void add_train_command(CLI::App& app, Context& ctx);
void add_eval_command(CLI::App& app, Context& ctx);
void add_predict_command(CLI::App& app, Context& ctx);
void add_data_command(CLI::App& app, Context& ctx);
void add_score_command(CLI::App& app, Context& ctx);
void add_embed_command(CLI::App& app, Context& ctx);
void add_explain_command(CLI::App& app, Context& ctx);
void add_plot_command(CLI::App& app, Context& ctx);
void add_tokenizer_command(CLI::App& app, Context& ctx);
void add_ceiling_command(CLI::App& app, Context& ctx);
void add_index_command(CLI::App& app, Context& ctx);
void add_search_command(CLI::App& app, Context& ctx);
void add_serve_command(CLI::App& app, Context& ctx);
void add_quantize_command(CLI::App& app, Context& ctx);

/// `--quantize none|int8` of the inference commands (predict, eval, embed, explain, serve) into
/// `value`; append_quantize() turns a given value into the eval.quantize assignment.
void add_quantize_option(CLI::App* cmd, std::string& value);
void append_quantize(std::vector<std::string>& overrides, const std::string& value);

/// `--precision fp32|bf16` of the inference commands that run the whole model (predict, eval,
/// explain, serve) into `value`; append_precision() turns a given value into eval.precision.
void add_precision_option(CLI::App* cmd, std::string& value);
void append_precision(std::vector<std::string>& overrides, const std::string& value);

/// CLI11 check that a value is not empty: `--text ""` or `--run-dir ""` is a usage error (exit
/// 2), not a silent default.
CLI::Validator non_empty();

/// CLI11 check that an integer is at least `minimum`, with a short message ("must be at least
/// 1, got 0"; CLI11's PositiveNumber prints a 300-digit range).
CLI::Validator at_least(long long minimum);

/// CLI11 check for an output image path: the files written are PNGs, so the name must end in
/// .png (a heat map named h.jpg would hold PNG bytes).
CLI::Validator png_path();

/// One line of a JSONL input file of predict / explain.
struct InputLine {
  int64_t number = 0;  ///< 1-based line number
  std::string image, text;
  std::string error;  ///< why the line is not {"image": ..., "text": ...}, or ""
};

/// The non-blank lines of a JSONL file of {"image": ..., "text": ...} objects ("-" = stdin;
/// text optional for a classify model). A line over 1 MiB, or an unreadable file, throws.
std::vector<InputLine> read_input_lines(const std::string& path);

/// Throws NotImplementedError naming the command and the issue that will deliver it.
[[noreturn]] void not_yet(const std::string& command, const std::string& issue);

}  // namespace xmodal::cli
