// `xmodal serve`: an HTTP/JSON inference server over one checkpoint (its HTTP layer:
// serve/http_server.h, Boost.Beast). Endpoints (docs/serving.md; the table: serve/endpoints.cpp):
//   GET  /health      503 {"status": "loading"} until the model is ready, then 200 {"status": "ok"}
//   GET  /v1/model    task, checkpoint, step, sizes, label list size, batching settings
//   POST /v1/predict  {"image": BASE64, "text": T, "top_k": K} or a list of them: per item the
//                     object `xmodal predict` prints for that input ("image" only for a path)
//   POST /v1/embed    retrieval: {"image": ...} and/or {"text": ...} -> their embeddings
//   POST /v1/search   retrieval with --index: {"text": T} or {"image": ...}, "top_k"
//   GET  /metrics     Prometheus text format (serve/metrics.h)
// Two io threads read and write every connection and answer /health, /metrics and /v1/model;
// http_threads workers parse, decode and tokenise /v1/* requests; one model thread runs
// dynamic batches (up to max_batch items, or max_delay after the first) without gradients
// (serve/batcher.h).
#pragma once

#include <memory>
#include <string>
#include <vector>

namespace xmodal::serve {

struct ServeOptions {
  std::string checkpoint;
  std::string host = "127.0.0.1";
  int port = 8080;  ///< 0 = a free port (Server::start returns it)
  int max_batch = 16;
  double max_delay_ms = 5;
  int queue = 256;            ///< items waiting for the model, at most (then 503 + Retry-After)
  int http_threads = 64;      ///< /v1/* requests decoded or waiting for the model at once
  int max_connections = 512;  ///< open connections, at most (then 503 and close)
  int max_items = 64;         ///< items in one request, at most
  double max_body_mb = 32;    ///< request body, at most (413)
  int timeout_s = 10;         ///< a request's deadline from its first byte to its last (408)
  double drain_s = 30;        ///< after stop(): what is queued gets this long, then exit anyway
  std::string index;          ///< retrieval: an `xmodal index` folder for /v1/search
  std::string image_root;     ///< "image_path" fields are allowed, inside this folder only
  std::string api_key_file;   ///< a key: every endpoint but /health needs it (401 otherwise)
  /// Config assignments applied to the checkpoint's config (run.threads, run.device, ...).
  std::vector<std::string> overrides;
};

class Server {
 public:
  /// Checks the options (an OptionError naming the option); loads nothing yet.
  explicit Server(const ServeOptions& options);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  /// Binds, starts the HTTP threads and loads the model (and index) in the background:
  /// /health answers 503 {"status": "loading"} until it is ready (then 200), or
  /// {"status": "failed"} until the server stops when it cannot load (wait() then returns 1).
  /// Returns the port (the free one for port 0).
  /// Throws std::runtime_error when the address cannot be bound.
  int start();
  /// Graceful stop (safe from any thread, more than once): no new connections; what is queued
  /// and in flight is answered.
  void stop();
  /// Blocks until the server has stopped: 0, or 1 when the model failed to load.
  int wait();
  bool ready() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace xmodal::serve
