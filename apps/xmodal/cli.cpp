#include "xmodal/cli.h"

#include <c10/util/Exception.h>
#include <torch/version.h>

#include <cerrno>
#include <csignal>
#include <cstring>
#include <iostream>

#include "xmodal/core/blas.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/strings.h"
#include "xmodal/core/version.h"

namespace xmodal::cli {
namespace {

// Prints each line of an error message with the program prefix.
void print_error(std::ostream& err, const std::string& message) {
  for (const auto& line : split(message, '\n')) {
    if (!line.empty()) err << "xmodal: error: " << line << "\n";
  }
}

}  // namespace

std::vector<std::string> Context::shared_overrides() const {
  std::vector<std::string> sets;
  if (threads) sets.push_back("run.threads=" + std::to_string(*threads));
  if (device) sets.push_back("run.device=" + *device);
  return sets;
}

CLI::Validator non_empty() {
  return CLI::Validator(
      [](std::string& value) { return value.empty() ? std::string("is empty") : std::string(); },
      "", "non-empty");
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
  add_info_command(app, ctx);

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
    if (!ctx.log_file.empty()) log::set_file(ctx.log_file);
    select_blas_kernel();  // before any matrix product: the kernels for this CPU, checked
    struct CloseLog {
      ~CloseLog() { log::close_file(); }
    } close_log;
    const int rc = ctx.action ? ctx.action() : 0;
    // Results go to stdout: a full disk, a closed pipe or a closed stdout loses them, and the
    // exit code must say so (`xmodal predict ... > /dev/full` is not a success).
    errno = 0;
    out.flush();
    if (!out) {
      const int error = errno;
      throw std::runtime_error(std::string("writing the results to stdout failed") +
                               (error != 0 ? " (" + std::string(std::strerror(error)) + ")" : "") +
                               "; the output is incomplete");
    }
    return rc;
  } catch (const NotImplementedError& e) {
    err << e.what() << "\n";
    return 2;
  } catch (const c10::Error& e) {
    print_error(err, e.what_without_backtrace());
    return 1;
  } catch (const std::invalid_argument& e) {
    print_error(err, e.what());
    return 2;
  } catch (const std::exception& e) {
    print_error(err, e.what());
    return 1;
  }
}

}  // namespace xmodal::cli
