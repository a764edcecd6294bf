// `xmodal serve --checkpoint CKPT [--host 127.0.0.1] [--port 8080] [--max-batch N]
//  [--max-delay-ms D] [--queue Q] [--http-threads T] [--max-connections C] [--index DIR]
//  [--api-key-file F] [--image-root DIR]`: the HTTP inference server (serve/server.h).
// SIGTERM / SIGINT / SIGHUP stop it gracefully (what is queued and in flight is answered, then
// exit 0 within --drain-s); a second signal exits at once.
#include <malloc.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <ostream>
#include <thread>

#include <fmt/format.h>

#include "xmodal/cli.h"
#include "xmodal/core/logging.h"
#include "xmodal/serve/server.h"
#include "xmodal/train/signals.h"

namespace xmodal::cli {
namespace {

// SIGHUP (a closed terminal, a supervisor's reload) is treated as SIGTERM: it is turned into one,
// so the server drains instead of dying with what it holds.
void hangup_to_term(int) { kill(getpid(), SIGTERM); }

// CLI11 check for a finite number in [lo, hi]: CLI11's Range lets NaN through (every comparison
// with it is false), and `--drain-s nan` would disable the drain limit.
CLI::Validator finite_in(double lo, double hi) {
  return CLI::Validator(
      [lo, hi](std::string& value) {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(value, &used);
        } catch (const std::exception&) {
          return "expected a number, got '" + value + "'";
        }
        if (used != value.size()) return "expected a number, got '" + value + "'";
        if (!std::isfinite(v) || v < lo || v > hi) {
          return fmt::format("must be a number from {} to {}, got {}", lo, hi, value);
        }
        return std::string();
      },
      fmt::format("[{}, {}]", lo, hi), "finite in range");
}

// SIGTERM / SIGINT: the first stops the server (train::StopSignals catches it; a thread here
// watches for it, a signal handler could do nothing else safely), the second ends the process
// at once (the default action, restored by StopSignals); after the first, the process ends by
// itself when draining takes longer than `drain_s`.
class SignalWatch {
 public:
  SignalWatch(serve::Server& server, double drain_s) : signals_(true) {
    struct sigaction hup {};
    hup.sa_handler = hangup_to_term;
    sigemptyset(&hup.sa_mask);
    sigaction(SIGHUP, &hup, &saved_hup_);
    thread_ = std::thread([this, &server, drain_s] {
      while (!done_ && train::StopSignals::pending() == 0) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
      }
      if (done_) return;
      const auto first = std::chrono::steady_clock::now();
      log::info("[serve] {}: stopping (what is queued is answered; a second signal exits at once)",
                train::StopSignals::pending() == SIGTERM ? "SIGTERM (or SIGHUP)" : "SIGINT");
      server.stop();
      while (!done_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        if (std::chrono::duration<double>(std::chrono::steady_clock::now() - first).count() >
            drain_s) {
          log::error("[serve] still draining after {} s (--drain-s): exiting", drain_s);
          std::fflush(nullptr);
          _exit(1);
        }
      }
    });
  }
  ~SignalWatch() {
    done_ = true;
    thread_.join();
    sigaction(SIGHUP, &saved_hup_, nullptr);
  }

 private:
  struct sigaction saved_hup_ {};
  train::StopSignals signals_;
  std::atomic<bool> done_{false};
  std::thread thread_;
};

}  // namespace

void add_serve_command(CLI::App& app, Context& ctx) {
  auto args = std::make_shared<serve::ServeOptions>();
  auto quantize = std::make_shared<std::string>();
  auto precision = std::make_shared<std::string>();
  auto* cmd = app.add_subcommand(
      "serve", "HTTP/JSON inference server: predict, embed, search, health and metrics");
  cmd->add_option("--checkpoint", args->checkpoint, "Checkpoint folder, RUN_DIR/best or a run")
      ->required()
      ->check(non_empty());
  cmd->add_option("--host", args->host, "Address to listen on (default: 127.0.0.1)")
      ->check(non_empty());
  cmd->add_option("--port", args->port, "Port; 0 = a free one, printed (default: 8080)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--max-batch", args->max_batch,
                  "Items the model runs together, at most (default: 16)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--max-delay-ms", args->max_delay_ms,
                  "Wait this long after the first queued item for more (default: 5)")
      ->check(finite_in(0, 10000));
  cmd->add_option("--queue", args->queue,
                  "Items waiting for the model, at most; then 503 (default: 256)")
      ->check(CLI::Range(1, 1000000));
  cmd->add_option("--http-threads", args->http_threads,
                  "Worker threads: /v1/* requests decoded or waiting for the model at once "
                  "(default: 64)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--max-connections", args->max_connections,
                  "Open connections, at most; more get 503 and are closed (default: 512)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--max-items", args->max_items, "Items in one request, at most (default: 64)")
      ->check(CLI::Range(1, 100000));
  cmd->add_option("--max-body-mb", args->max_body_mb,
                  "Request body, at most; 413 beyond (default: 32)")
      ->check(finite_in(0.001, 4096));
  cmd->add_option("--timeout-s", args->timeout_s,
                  "A request's deadline from its first byte to its last, and an answer's write "
                  "deadline; 408 beyond (default: 10)")
      ->check(CLI::Range(1, 3600));
  cmd->add_option("--drain-s", args->drain_s,
                  "After SIGTERM, answer what is queued for this long at most (default: 30)")
      ->check(finite_in(0, 3600));
  cmd->add_option("--index", args->index, "retrieval: an `xmodal index` folder for /v1/search")
      ->check(non_empty());
  cmd->add_option("--image-root", args->image_root,
                  "Allow \"image_path\" fields, for files inside this folder only")
      ->check(non_empty());
  cmd->add_option("--api-key-file", args->api_key_file,
                  "A file holding an API key: every endpoint but /health requires it "
                  "(Authorization: Bearer KEY or X-API-Key)")
      ->check(non_empty());
  add_quantize_option(cmd, *quantize);
  add_precision_option(cmd, *precision);
  cmd->callback([&ctx, args, quantize, precision] {
    ctx.action = [&ctx, args, quantize, precision] {
      auto o = *args;
      o.overrides = ctx.shared_overrides();
      append_quantize(o.overrides, *quantize);
      append_precision(o.overrides, *precision);
      // Requests are decoded on many HTTP threads and freed on the model thread: with glibc's
      // default of 8 arenas per core each keeps its own freed memory (scripts/bench/serve.sh:
      // peak RSS 417 -> 366 MiB with 2, throughput unchanged). MALLOC_ARENA_MAX still wins.
      if (std::getenv("MALLOC_ARENA_MAX") == nullptr) mallopt(M_ARENA_MAX, 2);
      serve::Server server(o);
      SignalWatch signals(server, o.drain_s);
      const int port = server.start();
      // scripts and tests read this line (with --port 0, the port chosen). It comes before
      // the model is loaded: /health answers 503 {"status": "loading"} until then, and the
      // process exits 1 when the model cannot be loaded (docs/serving.md "Lifecycle").
      ctx.out << "xmodal serve: listening on http://" << o.host << ":" << port << std::endl;
      const int rc = server.wait();
      log::info("[serve] stopped");
      return rc;
    };
  });
}

}  // namespace xmodal::cli
