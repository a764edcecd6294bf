// `xmodal serve`'s lifecycle: the options checked, the model (and index) loaded in the
// background, the model thread that runs batches, the hooks of the HTTP layer (authentication,
// errors, metrics) and a graceful stop. The endpoints: serve/endpoints.cpp.
#include "xmodal/serve/server.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <map>
#include <optional>
#include <stdexcept>
#include <thread>

#include "xmodal/config/config.h"
#include "xmodal/core/error.h"
#include "xmodal/core/files.h"
#include "xmodal/core/logging.h"
#include "xmodal/infer/json.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/serve/request.h"
#include "xmodal/serve/state.h"

namespace xmodal::serve {
using nlohmann::json;

namespace {

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

}  // namespace

void set_json(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = infer::dump_line(body) + "\n";
}

std::string what_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    return clip(c10->what_without_backtrace(), 300);
  }
  return clip(e.what(), 300);
}

ServerState::ServerState(const ServeOptions& options)
    : o(options),
      queue(BatchOptions{
          static_cast<size_t>(options.max_batch),
          std::chrono::microseconds(static_cast<int64_t>(options.max_delay_ms * 1000.0 + 0.5)),
          static_cast<size_t>(options.queue)}) {}

std::string ServerState::endpoint_label(const std::string& path) const {
  for (const auto& e : endpoints()) {
    if (path == e.path) return path;
  }
  return "other";
}

void ServerState::send_error(const HttpRequest& req, HttpResponse& res, int status, ErrorKind kind,
                             const std::string& message) {
  metrics.error(kind);
  log::warn("[serve] {} {} {} from {}: {}", status, clip(req.method, 20), endpoint_label(req.path),
            req.remote_addr, message);
  set_json(res, status, infer::error_json(message));
}

void ServerState::run_batch(std::vector<QueuedItem>& batch) {
  const auto start = Clock::now();
  for (const auto& item : batch)
    metrics.queue_wait(std::chrono::duration<double>(start - item.enqueued).count());
  std::vector<const ParsedItem*> items;
  for (const auto& item : batch) items.push_back(&item.job->items[item.index]);
  std::vector<ItemResult> out;
  try {
    out = batch.front().job->endpoint->run(*this, items);
  } catch (const std::exception& e) {
    const std::string what = what_of(e);
    log::error("[serve] the model failed on a batch of {}: {}", batch.size(), what);
    metrics.error(ErrorKind::model);
    out.assign(batch.size(), ItemResult());
    for (auto& r : out) r.error = "the model failed: " + what;
  }
  metrics.batch(seconds_since(start), batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    QueuedItem::Job& job = *batch[i].job;
    std::lock_guard<std::mutex> lock(job.mutex);
    job.results[batch[i].index] = std::move(out[i]);
    if (--job.remaining == 0) job.done.notify_all();
  }
}

struct Server::Impl : ServerState {
  using ServerState::ServerState;

  std::thread loader, model_thread;
  int port = 0;
  std::map<std::string, HttpRoute> routes_;

  void load();
  std::map<std::string, HttpRoute> routes();
  HttpHooks hooks();
};

void Server::Impl::load() {
  const auto start = Clock::now();
  try {
    infer::PredictorOptions p;
    p.checkpoint = o.checkpoint;
    p.overrides = o.overrides;
    predictor = std::make_unique<infer::Predictor>(p);
    const auto& m = predictor->loaded();
    if (!o.index.empty()) {
      infer::require_retrieval(m, "serve {index}");
      index = std::make_unique<infer::ImageIndex>(
          infer::ImageIndex::open(o.index, infer::checkpoint_identity(m.checkpoint)));
    }
    model_thread = std::thread([this] {
      std::vector<QueuedItem> batch;
      while (queue.pop(batch)) run_batch(batch);
    });
    ready = true;
    metrics.set_ready(true);
    log::info(
        "[serve] ready: {} (task {}, step {}) in {:.1f} s{}", m.checkpoint,
        config::to_string(m.config.task), m.step, seconds_since(start),
        index ? fmt::format("; index {} ({} images, {})", o.index, index->size(), index->backend())
              : std::string());
  } catch (const std::exception& e) {
    log::error("[serve] cannot load the model: {}", what_of(e));
    failed = true;
  }
}

std::map<std::string, HttpRoute> Server::Impl::routes() {
  std::map<std::string, HttpRoute> out;
  const auto& table = endpoints();
  for (size_t i = 0; i < table.size(); ++i) {
    const Endpoint& e = table[i];
    HttpRoute route{e.method, e.run_on, nullptr};
    if (e.handle != nullptr) {
      route.handler = [this, handle = e.handle](const HttpRequest& req, HttpResponse& res) {
        handle(*this, req, res);
      };
    } else {
      route.handler = [this, group = static_cast<int>(i)](const HttpRequest& req,
                                                          HttpResponse& res) {
        handle_items(req, res, group);
      };
    }
    out.emplace(e.path, std::move(route));
  }
  return out;
}

HttpHooks Server::Impl::hooks() {
  HttpHooks h;
  h.error = [this](const HttpRequest& req, int status, ErrorKind kind, const std::string& message) {
    HttpResponse res;
    if (status == 503) res.headers.emplace_back("Retry-After", "1");
    send_error(req, res, status, kind, message);
    return res;
  };
  h.check = [this](const HttpRequest& req) -> std::optional<HttpResponse> {
    if (api_key.empty() || req.path == "/health") return std::nullopt;
    std::string given;
    if (req.has_header("Authorization")) {
      given = bearer_token(req.header("Authorization"));
    } else if (req.has_header("X-API-Key")) {
      given = req.header("X-API-Key");
    }
    if (constant_time_equal(api_key, given)) return std::nullopt;
    HttpResponse res;
    res.headers.emplace_back("WWW-Authenticate", "Bearer");
    send_error(
        req, res, 401, ErrorKind::unauthorized,
        given.empty() ? "an API key is required (Authorization: Bearer KEY)" : "wrong API key");
    return res;
  };
  h.done = [this](const HttpRequest& req, int status, double seconds) {
    metrics.request(endpoint_label(req.path), status, seconds);
    log::debug("[serve] {} {} {} {:.1f} ms", status, clip(req.method, 20), clip(req.path),
               seconds * 1000);
  };
  return h;
}

Server::Server(const ServeOptions& options) : impl_(std::make_unique<Impl>(options)) {
  const auto& o = impl_->o;
  const auto require = [](bool ok, const std::string& message) {
    if (!ok) throw OptionError("serve", message);
  };
  const auto& lit = OptionError::literal;
  // (a NaN fails every comparison: each range is written so that it is refused)
  require(!o.checkpoint.empty(), "{checkpoint} is required");
  require(o.port >= 0 && o.port <= 65535, "{port} must be 0..65535");
  require(o.max_batch >= 1 && o.max_batch <= 4096, "{max_batch} must be 1..4096");
  require(o.max_delay_ms >= 0 && o.max_delay_ms <= 10000, "{max_delay_ms} must be 0..10000");
  require(o.queue >= 1 && o.queue <= 1000000, "{queue} must be 1..1000000");
  require(o.http_threads >= 1 && o.http_threads <= 4096, "{http_threads} must be 1..4096");
  require(o.max_connections >= 1 && o.max_connections <= 100000,
          "{max_connections} must be 1..100000");
  require(o.max_items >= 1 && o.max_items <= 100000, "{max_items} must be 1..100000");
  require(o.max_body_mb > 0 && o.max_body_mb <= 4096, "{max_body_mb} must be in (0, 4096]");
  require(o.timeout_s >= 1 && o.timeout_s <= 3600, "{timeout_s} must be 1..3600");
  require(o.drain_s >= 0 && o.drain_s <= 3600, "{drain_s} must be 0..3600");
  if (!o.api_key_file.empty()) {
    const std::string contents = read_file(o.api_key_file, 1 << 16);
    try {
      impl_->api_key = api_key_from(contents);
    } catch (const std::invalid_argument& e) {
      require(false, "{api_key_file} " + lit(o.api_key_file) + ": " + lit(e.what()));
    }
  }
  if (!o.image_root.empty()) {
    std::error_code ec;
    require(std::filesystem::is_directory(o.image_root, ec),
            "{image_root} " + lit(o.image_root) + " is not a folder");
  }
}

Server::~Server() {
  if (impl_->http) {
    stop();
    wait();
  }
}

int Server::start() {
  Impl& s = *impl_;
  const auto& o = s.o;
  s.metrics.set_queue_depth([&s] { return s.queue.depth(); });
  HttpOptions h;
  h.host = o.host;
  h.port = o.port;
  h.max_body_bytes = static_cast<size_t>(o.max_body_mb * 1024 * 1024);
  h.request_timeout = std::chrono::seconds(o.timeout_s);
  h.max_connections = o.max_connections;
  h.workers = o.http_threads;
  // two io threads: one stalled on a large write or a big /metrics leaves the other
  h.io_threads = 2;
  s.routes_ = s.routes();
  s.http = std::make_unique<HttpServer>(h, s.routes_, s.hooks());
  s.port = s.http->start();
  s.loader = std::thread([this] {
    impl_->load();
    if (impl_->failed) stop();
  });
  return s.port;
}

void Server::stop() {
  if (impl_->http) impl_->http->stop();
}

int Server::wait() {
  Impl& s = *impl_;
  if (s.http) s.http->wait();  // every connection closed, every worker done: nothing in flight
  if (s.loader.joinable()) s.loader.join();
  s.queue.stop();
  if (s.model_thread.joinable()) s.model_thread.join();
  return s.failed ? 1 : 0;
}

bool Server::ready() const { return impl_->ready; }

}  // namespace xmodal::serve
