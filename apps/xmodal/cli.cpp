#include "xmodal/cli.h"

#include <c10/util/Exception.h>
#include <torch/version.h>
#include <nlohmann/json.hpp>

#include <algorithm>
#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>

#include <unistd.h>

#include "xmodal/core/blas.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/strings.h"
#include "xmodal/core/version.h"
#include "xmodal/io/lines.h"

namespace xmodal::cli {
namespace {

// Prints each line of an error message with the program prefix.
void print_error(std::ostream& err, const std::string& message) {
  for (const auto& line : split(message, '\n')) {
    if (!line.empty()) err << "xmodal: error: " << line << "\n";
  }
}

// The flag of the command that ran (the deepest parsed subcommand) that sets the library option
// `name` (an OptionError's): --name-with-dashes, or its singular (EmbedOptions::images is
// --image); the name itself when the command has no such flag.
std::string flag_for(const CLI::App& app, const std::string& name) {
  const CLI::App* command = &app;
  while (!command->get_subcommands().empty()) command = command->get_subcommands().front();
  std::string flag = "--" + name;
  std::replace(flag.begin(), flag.end(), '_', '-');
  for (const std::string& candidate :
       {flag, flag.back() == 's' ? flag.substr(0, flag.size() - 1) : std::string()}) {
    if (!candidate.empty() && command->get_option_no_throw(candidate) != nullptr) return candidate;
  }
  return name;
}

}  // namespace

std::vector<std::string> Context::shared_overrides() const {
  std::vector<std::string> sets;
  if (threads) sets.push_back("run.threads=" + std::to_string(*threads));
  if (device) sets.push_back("run.device=" + *device);
  return sets;
}

bool StdoutBuffer::flush_buffer() {
  const char* data = pbase();
  size_t left = static_cast<size_t>(pptr() - pbase());
  while (left > 0) {
    const ssize_t n = ::write(1, data, left);
    if (n < 0) {
      if (errno == EINTR) continue;
      last_error_ = errno;
      setp(buffer_, buffer_ + sizeof buffer_);  // what could not be written is lost
      return false;
    }
    data += n;
    left -= static_cast<size_t>(n);
  }
  setp(buffer_, buffer_ + sizeof buffer_);
  return true;
}

StdoutBuffer::int_type StdoutBuffer::overflow(int_type c) {
  if (!flush_buffer()) return traits_type::eof();
  if (!traits_type::eq_int_type(c, traits_type::eof())) {
    *pptr() = traits_type::to_char_type(c);
    pbump(1);
  }
  return traits_type::not_eof(c);
}

int StdoutBuffer::sync() { return flush_buffer() ? 0 : -1; }

void add_quantize_option(CLI::App* cmd, std::string& value) {
  cmd->add_option("--quantize", value,
                  "int8: the Linear layers as dynamically quantized int8 (per-row weight "
                  "scales; CPU only); none: as stored (default: eval.quantize of the "
                  "checkpoint, none unless it is a quantized one)")
      ->check(CLI::IsMember({"none", "int8"}));
}

void append_quantize(std::vector<std::string>& overrides, const std::string& value) {
  if (!value.empty()) overrides.push_back("eval.quantize=" + value);
}

void add_precision_option(CLI::App* cmd, std::string& value) {
  cmd->add_option("--precision", value,
                  "bf16: the model's products in bfloat16 under autocast, outputs in fp32 (on a "
                  "CPU: one with AVX512-BF16 or AMX); fp32: as trained (default: eval.precision "
                  "of the checkpoint, fp32)")
      ->check(CLI::IsMember({"fp32", "bf16"}));
}

void append_precision(std::vector<std::string>& overrides, const std::string& value) {
  if (!value.empty()) overrides.push_back("eval.precision=" + value);
}

CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& value) { return value.empty() ? std::string("is empty") : std::string(); },
      "", "non-empty");
}

CLI::Validator at_least(long long minimum) {
  return CLI::Validator(
      [minimum](std::string& value) {
        long long v = 0;
        size_t used = 0;
        try {
          v = std::stoll(value, &used);
        } catch (const std::exception&) {
          return "expected an integer, got '" + value + "'";
        }
        if (used != value.size()) return "expected an integer, got '" + value + "'";
        if (v < minimum) return "must be at least " + std::to_string(minimum) + ", got " + value;
        return std::string();
      },
      ">=" + std::to_string(minimum), "at least " + std::to_string(minimum));
}

CLI::Validator png_path() {
  return CLI::Validator(
      [](std::string& value) {
        std::string ext = value.size() >= 4 ? value.substr(value.size() - 4) : "";
        for (auto& c : ext) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return ext == ".png" ? std::string()
                             : "'" + value + "': the image written is a PNG; name it *.png";
      },
      "*.png", "png path");
}

void not_yet(const std::string& command, const std::string& issue) {
  throw NotImplementedError("xmodal " + command + " is not implemented yet (" + issue + ")");
}

int run(int argc, const char* const* argv, std::ostream& out, std::ostream& err) {
  Context ctx{out, err};
  CLI::App app{"xmodal: train, evaluate and serve image+text transformer models", "xmodal"};
  app.set_version_flag("--version", "xmodal " + version() + " (LibTorch " TORCH_VERSION ")");
  app.require_subcommand(1, 1);
  app.fallthrough();  // shared flags may follow the subcommand: `xmodal info --threads 1`

  const std::string shared = "Shared options";
  app.add_option("--log-level", ctx.log_level,
                 "Minimum level logged to stderr: trace, debug, info, warn, error, off "
                 "(default: info)")
      ->check(CLI::IsMember({"trace", "debug", "info", "warn", "error", "off"}))
      ->group(shared);
  app.add_option("--log-file", ctx.log_file,
                 "Also append the log to this file (default: none; train also writes "
                 "RUN_DIR/train.log)")
      ->group(shared);
  app.add_option("--threads", ctx.threads,
                 "Intra-op CPU threads; 0 = all cores (default: run.threads of the config, "
                 "else all cores)")
      ->check(CLI::Range(0, 4096))
      ->group(shared);
  app.add_option("--device", ctx.device,
                 "auto, cpu, cuda or cuda:N (default: run.device of the config, else auto)")
      ->group(shared);

  add_train_command(app, ctx);
  add_eval_command(app, ctx);
  add_predict_command(app, ctx);
  add_data_command(app, ctx);
  add_score_command(app, ctx);
  add_embed_command(app, ctx);
  add_explain_command(app, ctx);
  add_plot_command(app, ctx);
  add_tokenizer_command(app, ctx);
  add_ceiling_command(app, ctx);
  add_index_command(app, ctx);
  add_search_command(app, ctx);
  add_serve_command(app, ctx);
  add_quantize_command(app, ctx);
  add_info_command(app, ctx);

  // An unknown command would otherwise read "A subcommand is required".
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg.rfind("-", 0) == 0) {
      const bool takes_value =
          arg == "--log-level" || arg == "--log-file" || arg == "--threads" || arg == "--device";
      if (takes_value) ++i;
      continue;
    }
    std::vector<std::string> names;
    for (const auto* sub : app.get_subcommands({})) names.push_back(sub->get_name());
    if (std::find(names.begin(), names.end(), arg) == names.end()) {
      const std::string near = closest_match(arg, names);
      err << "xmodal: error: unknown command '" << arg << "'"
          << (near.empty() ? "" : " (did you mean " + near + "?)") << "; the commands are "
          << join(names, ", ") << " (see xmodal --help)\n";
      return 2;
    }
    break;
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) return app.exit(e, out, err);  // --help, --version
    // one line, like every other error
    err << "xmodal: error: " << e.what() << " (see xmodal --help)\n";
    return 2;
  }

  // A file-size limit (ulimit -f) would otherwise kill the process mid-write with SIGXFSZ;
  // ignored, the write fails with EFBIG and is reported like a full disk.
  std::signal(SIGXFSZ, SIG_IGN);
  try {
    log::set_level(log::parse_level(ctx.log_level));
    const log::ScopedFile log_file(ctx.log_file);
    select_blas_kernel();  // before any matrix product: the kernels for this CPU, checked
    const int rc = ctx.action ? ctx.action() : 0;
    // Results go to stdout: a full disk, a closed pipe or a closed stdout loses them, and the
    // exit code must say so (`xmodal predict ... > /dev/full` is not a success).
    out.flush();
    if (!out) {
      const auto* buffer = dynamic_cast<const StdoutBuffer*>(out.rdbuf());
      const int error = buffer != nullptr ? buffer->last_error() : 0;
      throw std::runtime_error(std::string("writing the results to stdout failed") +
                               (error != 0 ? " (" + std::string(std::strerror(error)) + ")" : "") +
                               "; the output is incomplete");
    }
    return rc;
  } catch (const NotImplementedError& e) {
    err << e.what() << "\n";
    return exit_code(e.kind());
  } catch (const OptionError& e) {  // the library's option names as this command's flags
    print_error(err, e.render([&app](const std::string& name) { return flag_for(app, name); }));
    return exit_code(e.kind());
  } catch (const c10::Error& e) {
    print_error(err, e.what_without_backtrace());
    return exit_code(kind_of(e));
  } catch (const std::exception& e) {  // the error's kind decides (core/error.h)
    print_error(err, e.what());
    return exit_code(kind_of(e));
  }
}

std::vector<InputLine> read_input_lines(const std::string& path) {
  io::LineReader in(path);  // bounded: a line over 1 MiB (or /dev/zero) is an error
  std::vector<InputLine> lines;
  std::string text;
  while (in.next(text)) {
    const int64_t number = in.line_number();
    if (text.find_first_not_of(" \t\r") == std::string::npos) continue;
    InputLine line;
    line.number = number;
    try {
      const auto j = nlohmann::json::parse(text);
      if (!j.is_object() || !j.contains("image") || !j["image"].is_string() ||
          (j.contains("text") && !j["text"].is_string())) {
        line.error =
            "expected an object with string fields \"image\" and \"text\" (text optional for "
            "a classify model)";
      } else {
        line.image = j["image"].get<std::string>();
        line.text = j.contains("text") ? j["text"].get<std::string>() : std::string();
      }
    } catch (const nlohmann::json::exception& e) {
      line.error = std::string("not JSON: ") + e.what();
    }
    lines.push_back(std::move(line));
  }
  return lines;
}

}  // namespace xmodal::cli
