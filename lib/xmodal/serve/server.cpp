#include "xmodal/serve/server.h"

#include <c10/util/Exception.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <thread>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/config.h"
#include "xmodal/core/files.h"
#include "xmodal/core/logging.h"
#include "xmodal/infer/index.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/infer/prepared_input.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/image.h"
#include "xmodal/serve/batcher.h"
#include "xmodal/serve/http_server.h"
#include "xmodal/serve/metrics.h"
#include "xmodal/serve/request.h"
#include "xmodal/tasks/task.h"

namespace xmodal::serve {
namespace {
using nlohmann::json;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t) {
  return std::chrono::duration<double>(Clock::now() - t).count();
}

// What a queued item asks of the model thread.
enum Group { kPredict = 0, kEmbed = 1, kSearch = 2 };

// One request's items: the HTTP thread fills `inputs`, the model thread `out`, and the HTTP
// thread waits until `remaining` is 0.
struct Job {
  std::vector<std::unique_ptr<infer::PreparedInput>> inputs;
  std::vector<int> top_k;
  std::vector<json> out;
  std::mutex mutex;
  std::condition_variable done;
  size_t remaining = 0;
};

struct Item {
  int group = kPredict;
  Clock::time_point enqueued;
  std::shared_ptr<Job> job;
  size_t index = 0;
};

// What the error a per-item failure came from says: the HttpError's, or 400 with a kind.
struct ItemError {
  int status;
  std::string kind, message;
};

}  // namespace

struct Server::Impl {
  explicit Impl(const ServeOptions& options)
      : o(options),
        queue(BatchOptions{
            static_cast<size_t>(options.max_batch),
            std::chrono::microseconds(static_cast<int64_t>(options.max_delay_ms * 1000.0 + 0.5)),
            static_cast<size_t>(options.queue)}) {}

  ServeOptions o;
  std::unique_ptr<HttpServer> http;
  Metrics metrics;
  BatchQueue<Item> queue;
  std::unique_ptr<infer::Predictor> predictor;
  std::unique_ptr<infer::ImageIndex> index;
  std::atomic<bool> ready{false}, failed{false};
  std::string api_key;
  std::thread loader, model_thread;
  int port = 0;
  std::map<std::string, HttpRoute> routes_;

  void load();
  void run_model();
  void run_batch(std::vector<Item>& batch);
  std::map<std::string, HttpRoute> routes();
  HttpHooks hooks();
  std::string endpoint_label(const std::string& path) const {
    return routes_.count(path) ? path : "other";
  }
  void handle_items(const HttpRequest& req, HttpResponse& res, Group group);
  std::unique_ptr<infer::PreparedInput> parse_item(const json& item, const std::string& at,
                                                   Group group, int& top_k,
                                                   std::string& image_path);
  cv::Mat item_image(const json& item, const std::string& at, std::string& image_path);
  void send_error(const HttpRequest& req, HttpResponse& res, int status, const std::string& kind,
                  const std::string& message);
  json model_info() const;
};

namespace {

void set_json(HttpResponse& res, int status, const json& body) {
  res.status = status;
  res.content_type = "application/json";
  res.body = body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n";
}

// The first line of an exception's message (c10::Error appends a C++ stack trace).
std::string what_of(const std::exception& e) {
  if (const auto* c10 = dynamic_cast<const c10::Error*>(&e)) {
    return clip(c10->what_without_backtrace(), 300);
  }
  return clip(e.what(), 300);
}

}  // namespace

void Server::Impl::send_error(const HttpRequest& req, HttpResponse& res, int status,
                              const std::string& kind, const std::string& message) {
  metrics.error(kind);
  log::warn("[serve] {} {} {} from {}: {}", status, clip(req.method, 20), endpoint_label(req.path),
            req.remote_addr, message);
  set_json(res, status, json{{"error", message}});
}

void Server::Impl::load() {
  const auto start = Clock::now();
  try {
    infer::PredictorOptions p;
    p.checkpoint = o.checkpoint;
    p.overrides = o.overrides;
    predictor = std::make_unique<infer::Predictor>(p);
    const auto& m = predictor->loaded();
    if (!o.index.empty()) {
      infer::require_retrieval(m, "serve --index");
      index = std::make_unique<infer::ImageIndex>(
          infer::ImageIndex::open(o.index, infer::checkpoint_identity(m.checkpoint)));
    }
    model_thread = std::thread([this] { run_model(); });
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

void Server::Impl::run_model() {
  std::vector<Item> batch;
  while (queue.pop(batch)) run_batch(batch);
}

void Server::Impl::run_batch(std::vector<Item>& batch) {
  const auto start = Clock::now();
  for (const auto& item : batch)
    metrics.queue_wait(std::chrono::duration<double>(start - item.enqueued).count());
  std::vector<const infer::PreparedInput*> inputs;
  std::vector<int> top_k;
  for (const auto& item : batch) {
    inputs.push_back(item.job->inputs[item.index].get());
    top_k.push_back(item.job->top_k[item.index]);
  }
  std::vector<json> out(batch.size());
  try {
    const int group = batch.front().group;
    if (group == kPredict) {
      out = predictor->run(inputs, top_k);
    } else {
      const infer::Embeddings e = predictor->embed(inputs);
      if (group == kEmbed) {
        for (size_t i = 0; i < batch.size(); ++i) {
          out[i] = json::object();
          const auto row = [](const torch::Tensor& t) {
            const auto c = t.to(torch::kFloat32).contiguous();
            return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
          };
          if (e.image[i].defined()) out[i]["image_embedding"] = row(e.image[i]);
          if (e.text[i].defined()) out[i]["text_embedding"] = row(e.text[i]);
          out[i]["dim"] = (e.image[i].defined() ? e.image[i] : e.text[i]).numel();
        }
      } else {  // search: one query per item, its image or its text
        std::vector<torch::Tensor> queries;
        int64_t k = 1;
        for (size_t i = 0; i < batch.size(); ++i) {
          queries.push_back(e.image[i].defined() ? e.image[i] : e.text[i]);
          k = std::max<int64_t>(k, top_k[i]);
        }
        const auto hits = index->search(torch::stack(queries), k);
        for (size_t i = 0; i < batch.size(); ++i) {
          json results = json::array();
          for (const auto& h : hits[i]) {
            if (h.rank > top_k[i]) break;
            results.push_back({{"rank", h.rank}, {"path", h.path}, {"score", h.score}});
          }
          out[i] = json{{"results", results}};
        }
      }
    }
  } catch (const std::exception& e) {
    const std::string what = what_of(e);
    log::error("[serve] the model failed on a batch of {}: {}", batch.size(), what);
    metrics.error("model");
    for (auto& j : out) j = json{{"error", "the model failed: " + what}};
  }
  metrics.batch(seconds_since(start), batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    Job& job = *batch[i].job;
    std::lock_guard<std::mutex> lock(job.mutex);
    job.out[batch[i].index] = std::move(out[i]);
    if (--job.remaining == 0) job.done.notify_all();
  }
}

cv::Mat Server::Impl::item_image(const json& item, const std::string& at, std::string& image_path) {
  const uint64_t max_pixels = io::max_image_pixels();
  std::string bytes, name;
  if (item.contains("image")) {
    if (item.contains("image_path")) {
      throw HttpError(400, "bad_field", at + ": give \"image\" or \"image_path\", not both");
    }
    const auto& v = item["image"];
    if (!v.is_string()) {
      throw HttpError(400, "bad_field",
                      at + ".image: expected a base64 string, got " + std::string(v.type_name()));
    }
    name = at + ".image";
    bytes = decode_base64(v.get_ref<const std::string&>(), name);
  } else if (item.contains("image_path")) {
    const auto& v = item["image_path"];
    if (!v.is_string()) {
      throw HttpError(400, "bad_field",
                      at + ".image_path: expected a string, got " + std::string(v.type_name()));
    }
    if (o.image_root.empty()) {
      throw HttpError(403, "forbidden_path",
                      at + ".image_path: image paths are refused (the server was not started "
                           "with --image-root DIR); send the image as base64 in \"image\"");
    }
    image_path = v.get<std::string>();
    const std::string real = resolve_under(o.image_root, image_path, at + ".image_path");
    name = at + ".image_path " + image_path;
    try {
      bytes = read_file(real, static_cast<int64_t>(o.max_body_mb * 1024 * 1024) + 1);
    } catch (const std::exception& e) {
      throw HttpError(400, "bad_image", name + ": " + e.what());
    }
  } else {
    return {};
  }
  try {
    cv::Mat rgb = io::decode_image_rgb(bytes, name, max_pixels);
    metrics.image_decoded();
    return rgb;
  } catch (const std::exception& e) {
    throw HttpError(400, "bad_image", e.what());
  }
}

std::unique_ptr<infer::PreparedInput> Server::Impl::parse_item(const json& item,
                                                               const std::string& at, Group group,
                                                               int& top_k,
                                                               std::string& image_path) {
  if (!item.is_object()) {
    throw HttpError(400, "bad_field",
                    at + ": expected a JSON object, got " + std::string(item.type_name()));
  }
  for (const auto& [key, value] : item.items()) {
    const bool known = key == "image" || key == "image_path" || key == "text" ||
                       (key == "top_k" && group != kEmbed);
    if (!known) {
      throw HttpError(400, "bad_field",
                      at + ": unknown field \"" + clip(key) +
                          "\" (expected image or image_path, text" +
                          (group != kEmbed ? ", top_k)" : ")"));
    }
  }
  top_k = group == kSearch ? 10 : 5;
  if (item.contains("top_k")) {
    const auto& v = item["top_k"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1000) {
      throw HttpError(400, "bad_field",
                      at + ".top_k: expected an integer from 1 to 1000, got " + clip(v.dump(), 40));
    }
    top_k = static_cast<int>(v.get<int64_t>());
  }
  const std::string* text = nullptr;
  if (item.contains("text")) {
    const auto& v = item["text"];
    if (!v.is_string()) {
      throw HttpError(400, "bad_field",
                      at + ".text: expected a string, got " + std::string(v.type_name()));
    }
    text = &v.get_ref<const std::string&>();
  }
  const bool has_image = item.contains("image") || item.contains("image_path");
  const auto& m = predictor->loaded();
  if (group == kPredict) {
    if (!has_image) throw HttpError(400, "bad_field", at + ": missing field \"image\"");
    if (text == nullptr && tasks::task(m.config.task).reads_text()) {
      throw HttpError(400, "bad_field", at + ": missing field \"text\"");
    }
    const cv::Mat rgb = item_image(item, at, image_path);
    try {
      return predictor->prepare(rgb, text != nullptr ? *text : std::string());
    } catch (const std::invalid_argument& e) {
      throw HttpError(400, "bad_field", at + ".text: " + e.what());
    }
  }
  if (m.config.task != config::Task::retrieval) {
    throw HttpError(400, "wrong_task",
                    std::string(group == kEmbed ? "/v1/embed" : "/v1/search") +
                        " needs a retrieval checkpoint; this one is task " +
                        config::to_string(m.config.task) + " (use /v1/predict)");
  }
  if (group == kSearch && has_image == (text != nullptr)) {
    throw HttpError(400, "bad_field", at + ": give exactly one of \"text\" and \"image\"");
  }
  if (group == kEmbed && !has_image && text == nullptr) {
    throw HttpError(400, "bad_field", at + ": give \"image\" and/or \"text\"");
  }
  if (text != nullptr && text->find_first_not_of(" \t\r\n") == std::string::npos) {
    throw HttpError(400, "bad_field", at + ".text: an empty text");
  }
  const cv::Mat rgb = item_image(item, at, image_path);
  return predictor->prepare_parts(rgb, text);
}

void Server::Impl::handle_items(const HttpRequest& req, HttpResponse& res, Group group) {
  if (!ready) {
    res.headers.emplace_back("Retry-After", "1");
    return send_error(req, res, 503, "loading", "the model is loading; retry shortly");
  }
  if (group == kSearch && !index) {
    return send_error(req, res, 404, "no_index",
                      "/v1/search needs an index: start the server with --index INDEX_DIR");
  }
  json parsed;
  try {
    parsed = parse_body(req.body);
  } catch (const HttpError& e) {
    return send_error(req, res, e.status(), e.kind(), e.what());
  }
  const bool single = parsed.is_object();
  if (!single && !parsed.is_array()) {
    return send_error(
        req, res, 400, "bad_json",
        "expected a JSON object or an array of objects, got " + std::string(parsed.type_name()));
  }
  const json items = single ? json::array({std::move(parsed)}) : std::move(parsed);
  if (items.empty()) return send_error(req, res, 400, "bad_field", "an empty list of items");
  if (items.size() > static_cast<size_t>(o.max_items)) {
    return send_error(
        req, res, 413, "too_many_items",
        fmt::format("{} items in one request; at most --max-items {}", items.size(), o.max_items));
  }
  if (items.size() > static_cast<size_t>(o.queue)) {  // it could never fit: not a 503
    return send_error(req, res, 413, "too_many_items",
                      fmt::format("{} items in one request; the queue holds at most --queue {}",
                                  items.size(), o.queue));
  }
  auto job = std::make_shared<Job>();
  const size_t n = items.size();
  job->inputs.resize(n);
  job->top_k.assign(n, 5);
  job->out.assign(n, json());
  std::vector<std::string> paths(n);
  std::vector<ItemError> errors(n);
  std::vector<Item> queued;
  for (size_t i = 0; i < n; ++i) {
    const std::string at = single ? std::string("body") : fmt::format("items[{}]", i);
    try {
      job->inputs[i] = parse_item(items[i], at, group, job->top_k[i], paths[i]);
      queued.push_back(Item{group, Clock::now(), job, i});
    } catch (const HttpError& e) {
      errors[i] = {e.status(), e.kind(), e.what()};
    } catch (const std::exception& e) {
      errors[i] = {400, "bad_field", at + ": " + e.what()};
    }
  }
  if (!queued.empty()) {
    job->remaining = queued.size();
    for (auto& q : queued) q.enqueued = Clock::now();
    const size_t count = queued.size();
    if (!queue.push(queued)) {
      const bool stopping = http->stopping();
      res.headers.emplace_back("Retry-After", "1");
      return send_error(req, res, 503, stopping ? "stopping" : "queue_full",
                        stopping ? "the server is shutting down"
                                 : fmt::format("the queue is full ({} items waiting, --queue {}; "
                                               "{} more did not fit); retry shortly",
                                               queue.depth(), o.queue, count));
    }
    std::unique_lock<std::mutex> lock(job->mutex);
    // the model thread answers everything it was given, also when stopping; the limit only
    // guards against a model that hangs
    const auto limit = std::chrono::seconds(std::max(60, 4 * o.timeout_s));
    if (!job->done.wait_for(lock, limit, [&] { return job->remaining == 0; })) {
      return send_error(req, res, 504, "timeout",
                        fmt::format("no answer from the model within {} s", limit.count()));
    }
  }
  json answer = json::array();
  for (size_t i = 0; i < n; ++i) {
    if (!errors[i].message.empty()) {
      metrics.error(errors[i].kind);
      log::warn("[serve] {} {} {} from {}: {}", errors[i].status, req.method,
                endpoint_label(req.path), req.remote_addr, errors[i].message);
      if (single) {
        set_json(res, errors[i].status, json{{"error", errors[i].message}});
        return;
      }
      answer.push_back(json{{"error", errors[i].message}});
      continue;
    }
    json j = job->out[i];
    if (group == kPredict && !j.contains("error")) {
      // what `xmodal predict` prints: the input's text (and its image when it was a path)
      json described = {{"text", items[i].value("text", std::string())}};
      if (!paths[i].empty()) described["image"] = paths[i];
      described.update(j);
      j = std::move(described);
    }
    if (single && j.contains("error")) {
      set_json(res, 500, j);
      return;
    }
    answer.push_back(std::move(j));
  }
  set_json(res, 200, single ? answer[0] : answer);
}

json Server::Impl::model_info() const {
  const auto& m = predictor->loaded();
  const auto& c = m.config;
  const tasks::Task& task = tasks::task(c.task);
  json j = {{"task", config::to_string(c.task)},
            {"checkpoint", m.checkpoint},
            {"step", m.step},
            {"quantization", config::to_string(m.quantization)},
            {"image_size", c.data.image_size},
            {"max_text_len", c.data.max_text_len},
            {"reads_text", task.reads_text()},
            {"labels", m.artifacts.class_names.size()},
            {"model",
             {{"vision", {{"hidden", c.model.vision.hidden}, {"layers", c.model.vision.layers}}},
              {"text", {{"hidden", c.model.text.hidden}, {"layers", c.model.text.layers}}},
              {"fusion",
               {{"mode", config::to_string(c.model.fusion.mode)},
                {"hidden", c.model.fusion.hidden},
                {"layers", c.model.fusion.layers}}}}},
            {"batching",
             {{"max_batch", o.max_batch},
              {"max_delay_ms", o.max_delay_ms},
              {"queue", o.queue},
              {"max_items", o.max_items}}}};
  if (c.task == config::Task::retrieval) j["embed_dim"] = c.model.retrieval.embed_dim;
  if (index) {
    j["index"] = {{"dir", o.index}, {"images", index->size()}, {"backend", index->backend()}};
  }
  return j;
}

std::map<std::string, HttpRoute> Server::Impl::routes() {
  // Every endpoint: its method, where it runs (the quick ones on the io thread, so that slow
  // clients and busy workers never delay them; the ones that wait for the model on a worker)
  // and its handler.
  const auto items = [this](Group group) {
    return
        [this, group](const HttpRequest& req, HttpResponse& res) { handle_items(req, res, group); };
  };
  return {
      {"/health",
       {"GET", RunOn::io_thread,
        [this](const HttpRequest&, HttpResponse& res) {
          if (ready) return set_json(res, 200, json{{"status", "ok"}});
          res.headers.emplace_back("Retry-After", "1");
          set_json(res, 503, json{{"status", failed ? "failed" : "loading"}});
        }}},
      {"/metrics",
       {"GET", RunOn::io_thread,
        [this](const HttpRequest&, HttpResponse& res) {
          res.status = 200;
          res.content_type = "text/plain; version=0.0.4; charset=utf-8";
          res.body = metrics.render();
        }}},
      {"/v1/model",
       {"GET", RunOn::io_thread,
        [this](const HttpRequest& req, HttpResponse& res) {
          if (!ready) {
            res.headers.emplace_back("Retry-After", "1");
            return send_error(req, res, 503, "loading", "the model is loading; retry shortly");
          }
          set_json(res, 200, model_info());
        }}},
      {"/v1/predict", {"POST", RunOn::worker, items(kPredict)}},
      {"/v1/embed", {"POST", RunOn::worker, items(kEmbed)}},
      {"/v1/search", {"POST", RunOn::worker, items(kSearch)}},
  };
}

HttpHooks Server::Impl::hooks() {
  HttpHooks h;
  h.error = [this](const HttpRequest& req, int status, const std::string& kind,
                   const std::string& message) {
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
        req, res, 401, "unauthorized",
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
    if (!ok) throw std::invalid_argument("serve: " + message);
  };
  // (a NaN fails every comparison: each range is written so that it is refused)
  require(!o.checkpoint.empty(), "--checkpoint is required");
  require(o.port >= 0 && o.port <= 65535, "--port must be 0..65535");
  require(o.max_batch >= 1 && o.max_batch <= 4096, "--max-batch must be 1..4096");
  require(o.max_delay_ms >= 0 && o.max_delay_ms <= 10000, "--max-delay-ms must be 0..10000");
  require(o.queue >= 1 && o.queue <= 1000000, "--queue must be 1..1000000");
  require(o.http_threads >= 1 && o.http_threads <= 4096, "--http-threads must be 1..4096");
  require(o.max_connections >= 1 && o.max_connections <= 100000,
          "--max-connections must be 1..100000");
  require(o.max_items >= 1 && o.max_items <= 100000, "--max-items must be 1..100000");
  require(o.max_body_mb > 0 && o.max_body_mb <= 4096, "--max-body-mb must be in (0, 4096]");
  require(o.timeout_s >= 1 && o.timeout_s <= 3600, "--timeout-s must be 1..3600");
  require(o.drain_s >= 0 && o.drain_s <= 3600, "--drain-s must be 0..3600");
  if (!o.api_key_file.empty()) {
    const std::string contents = read_file(o.api_key_file, 1 << 16);
    try {
      impl_->api_key = api_key_from(contents);
    } catch (const std::invalid_argument& e) {
      require(false, "--api-key-file " + o.api_key_file + ": " + e.what());
    }
  }
  if (!o.image_root.empty()) {
    std::error_code ec;
    require(std::filesystem::is_directory(o.image_root, ec),
            "--image-root " + o.image_root + " is not a folder");
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
