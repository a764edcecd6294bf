#include "xmodal/serve/server.h"

// Debian's libcpp-httplib is a compiled library: this file is built with the flags of its
// pkg-config file (lib/CMakeLists.txt), so that the classes match the ones it was built with.
#include <httplib.h>
#include <sys/socket.h>
#include <nlohmann/json.hpp>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <mutex>
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

// cpp-httplib's pool with a bounded backlog: when every thread is busy and `backlog`
// connections wait, the accept loop waits too (the kernel's listen queue holds the rest), so
// no connection queues without limit in the process.
class BoundedPool : public httplib::TaskQueue {
 public:
  BoundedPool(size_t threads, size_t backlog) : backlog_(backlog) {
    for (size_t i = 0; i < threads; ++i) workers_.emplace_back([this] { work(); });
  }
  void enqueue(std::function<void()> fn) override {
    {
      std::unique_lock<std::mutex> lock(mutex_);
      space_.wait(lock, [&] { return jobs_.size() < backlog_ || shutdown_; });
      jobs_.push_back(std::move(fn));
    }
    ready_.notify_one();
  }
  void shutdown() override {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      shutdown_ = true;
    }
    ready_.notify_all();
    space_.notify_all();
    for (auto& t : workers_) t.join();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> fn;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        ready_.wait(lock, [&] { return !jobs_.empty() || shutdown_; });
        if (jobs_.empty()) return;  // shut down, nothing left
        fn = std::move(jobs_.front());
        jobs_.pop_front();
      }
      space_.notify_one();
      fn();
    }
  }
  size_t backlog_;
  std::vector<std::thread> workers_;
  std::deque<std::function<void()>> jobs_;
  std::mutex mutex_;
  std::condition_variable ready_, space_;
  bool shutdown_ = false;
};

// httplib's Server, with its listening socket in reach: Debian's build listens with a backlog
// of 5 (CPPHTTPLIB_LISTEN_BACKLOG, compiled into the library), so 64 clients connecting at
// once lose SYNs and retry after 1 s, 3 s, ... (a p99 of seconds under load). listen() again on
// the bound socket raises the backlog.
class HttpServer : public httplib::Server {
 public:
  bool raise_backlog(int backlog) { return ::listen(svr_sock_, backlog) == 0; }
};

const char* const kEndpoints[] = {"/health",   "/v1/model",  "/v1/predict",
                                  "/v1/embed", "/v1/search", "/metrics"};

// The metrics label of a path: a known endpoint, else "other" (a hostile client must not
// create a series per path).
std::string endpoint_label(const std::string& path) {
  for (const char* e : kEndpoints) {
    if (path == e) return e;
  }
  return "other";
}

// The request's start, set when routing begins (after the headers) on the thread that serves
// it, read by the logger when the answer has been written.
thread_local Clock::time_point request_start{};

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
  HttpServer http;
  Metrics metrics;
  BatchQueue<Item> queue;
  std::unique_ptr<infer::Predictor> predictor;
  std::unique_ptr<infer::ImageIndex> index;
  std::atomic<bool> ready{false}, failed{false}, listener_done{false};
  std::atomic<bool> stopping{false};
  std::string api_key;
  std::thread listener, loader, model_thread;
  int port = 0;

  void load();
  void run_model();
  void run_batch(std::vector<Item>& batch);
  void routes();
  void handle_items(const httplib::Request& req, httplib::Response& res,
                    const httplib::ContentReader& reader, Group group);
  std::unique_ptr<infer::PreparedInput> parse_item(const json& item, const std::string& at,
                                                   Group group, int& top_k,
                                                   std::string& image_path);
  cv::Mat item_image(const json& item, const std::string& at, std::string& image_path);
  void send_error(const httplib::Request& req, httplib::Response& res, int status,
                  const std::string& kind, const std::string& message);
  json model_info() const;
};

namespace {

void set_json(httplib::Response& res, int status, const json& body) {
  res.status = status;
  res.set_content(body.dump(-1, ' ', false, json::error_handler_t::replace) + "\n",
                  "application/json");
}

}  // namespace

void Server::Impl::send_error(const httplib::Request& req, httplib::Response& res, int status,
                              const std::string& kind, const std::string& message) {
  metrics.error(kind);
  log::warn("[serve] {} {} {} from {}: {}", status, req.method, endpoint_label(req.path),
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
    log::error("[serve] cannot load the model: {}", e.what());
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
    log::error("[serve] the model failed on a batch of {}: {}", batch.size(), e.what());
    metrics.error("model");
    for (auto& j : out) j = json{{"error", std::string("the model failed: ") + e.what()}};
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
                      at + ": unknown field \"" + key + "\" (expected image or image_path, text" +
                          (group != kEmbed ? ", top_k)" : ")"));
    }
  }
  top_k = group == kSearch ? 10 : 5;
  if (item.contains("top_k")) {
    const auto& v = item["top_k"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1000) {
      throw HttpError(400, "bad_field",
                      at + ".top_k: expected an integer from 1 to 1000, got " + v.dump());
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
  const cv::Mat rgb = item_image(item, at, image_path);
  return predictor->prepare_parts(rgb, text);
}

void Server::Impl::handle_items(const httplib::Request& req, httplib::Response& res,
                                const httplib::ContentReader& reader, Group group) {
  const auto start = Clock::now();
  // The body, with a deadline for all of it (a client that trickles bytes is cut off).
  std::string body;
  const auto deadline = start + std::chrono::seconds(o.timeout_s);
  bool late = false;
  const bool complete = reader([&](const char* data, size_t n) {
    body.append(data, n);
    if (Clock::now() > deadline) {
      late = true;
      return false;
    }
    return true;
  });
  if (!complete) {
    res.set_header("Connection", "close");
    // a body that stopped coming: the socket's read timeout (timeout_s) ended it
    if (late || seconds_since(start) >= 0.9 * o.timeout_s) {
      return send_error(req, res, 408, "timeout",
                        "the body did not arrive within " + std::to_string(o.timeout_s) + " s");
    }
    if (res.status == 413) {
      return send_error(req, res, 413, "too_large",
                        fmt::format("body over --max-body-mb {}", o.max_body_mb));
    }
    return send_error(req, res, 400, "bad_request", "the body could not be read (cut short?)");
  }
  if (!ready) {
    res.set_header("Retry-After", "1");
    return send_error(req, res, 503, "loading", "the model is loading; retry shortly");
  }
  if (group == kSearch && !index) {
    return send_error(req, res, 404, "no_index",
                      "/v1/search needs an index: start the server with --index INDEX_DIR");
  }
  json parsed;
  try {
    parsed = parse_body(body);
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
      res.set_header("Retry-After", "1");
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
      log::warn("[serve] {} {} {} from {}: {}", errors[i].status, req.method, req.path,
                req.remote_addr, errors[i].message);
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

void Server::Impl::routes() {
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    request_start = Clock::now();
    if (!api_key.empty() && req.path != "/health") {
      std::string given;
      const std::string auth = req.get_header_value("Authorization");
      if (auth.rfind("Bearer ", 0) == 0) {
        given = auth.substr(7);
      } else if (req.has_header("X-API-Key")) {
        given = req.get_header_value("X-API-Key");
      }
      if (!constant_time_equal(api_key, given)) {
        res.set_header("WWW-Authenticate", "Bearer");
        send_error(
            req, res, 401, "unauthorized",
            given.empty() ? "an API key is required (Authorization: Bearer KEY)" : "wrong API key");
        return httplib::Server::HandlerResponse::Handled;
      }
    }
    return httplib::Server::HandlerResponse::Unhandled;
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    if (ready) return set_json(res, 200, json{{"status", "ok"}});
    res.set_header("Retry-After", "1");
    set_json(res, 503, json{{"status", failed ? "failed" : "loading"}});
  });
  http.Get("/metrics", [this](const httplib::Request&, httplib::Response& res) {
    res.status = 200;
    res.set_content(metrics.render(), "text/plain; version=0.0.4; charset=utf-8");
  });
  http.Get("/v1/model", [this](const httplib::Request& req, httplib::Response& res) {
    if (!ready) {
      res.set_header("Retry-After", "1");
      return send_error(req, res, 503, "loading", "the model is loading; retry shortly");
    }
    set_json(res, 200, model_info());
  });
  const auto post = [this](const char* path, Group group) {
    http.Post(path, [this, group](const httplib::Request& req, httplib::Response& res,
                                  const httplib::ContentReader& reader) {
      handle_items(req, res, reader, group);
    });
  };
  post("/v1/predict", kPredict);
  post("/v1/embed", kEmbed);
  post("/v1/search", kSearch);
  // What httplib answers by itself (no route, a malformed request, a body over the limit)
  // gets a JSON error too.
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [this](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        std::string kind = "bad_request", message;
        switch (res.status) {
          case 404: {
            kind = "not_found";
            const std::string label = endpoint_label(req.path);
            message = label == "other"
                          ? "no endpoint " + req.method + " " + req.path.substr(0, 200)
                          : "use " +
                                std::string(label == "/v1/predict" || label == "/v1/embed" ||
                                                    label == "/v1/search"
                                                ? "POST"
                                                : "GET") +
                                " for " + label;
            if (label != "other") res.status = 405;
            break;
          }
          case 413:
            kind = "too_large";
            message = fmt::format("body over --max-body-mb {}", o.max_body_mb);
            break;
          case 414:
            kind = "too_large";
            message = "request line too long";
            break;
          default:
            message = fmt::format("malformed request (HTTP {})", res.status);
        }
        send_error(req, res, res.status, kind, message);
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler(
      [this](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        send_error(req, res, 500, "internal", "internal error: " + what);
      });
  http.set_logger([this](const httplib::Request& req, const httplib::Response& res) {
    const double seconds = request_start == Clock::time_point{} ? -1 : seconds_since(request_start);
    request_start = Clock::time_point{};
    metrics.request(endpoint_label(req.path), res.status, seconds);
    log::debug("[serve] {} {} {} {:.1f} ms", res.status, req.method, req.path.substr(0, 200),
               seconds * 1000);
  });
}

Server::Server(const ServeOptions& options) : impl_(std::make_unique<Impl>(options)) {
  const auto& o = impl_->o;
  const auto require = [](bool ok, const std::string& message) {
    if (!ok) throw std::invalid_argument("serve: " + message);
  };
  require(!o.checkpoint.empty(), "--checkpoint is required");
  require(o.port >= 0 && o.port <= 65535, "--port must be 0..65535");
  require(o.max_batch >= 1, "--max-batch must be >= 1");
  require(o.max_delay_ms >= 0 && o.max_delay_ms <= 10000, "--max-delay-ms must be 0..10000");
  require(o.queue >= 1, "--queue must be >= 1");
  require(o.http_threads >= 1 && o.http_threads <= 4096, "--http-threads must be 1..4096");
  require(o.max_items >= 1, "--max-items must be >= 1");
  require(o.max_body_mb > 0 && o.max_body_mb <= 4096, "--max-body-mb must be in (0, 4096]");
  require(o.timeout_s >= 1, "--timeout-s must be >= 1");
  if (!o.api_key_file.empty()) {
    std::string key = read_file(o.api_key_file, 1 << 16);
    while (!key.empty() && (key.back() == '\n' || key.back() == '\r' || key.back() == ' ')) {
      key.pop_back();
    }
    require(!key.empty(), "--api-key-file " + o.api_key_file + " is empty");
    impl_->api_key = key;
  }
  if (!o.image_root.empty()) {
    std::error_code ec;
    require(std::filesystem::is_directory(o.image_root, ec),
            "--image-root " + o.image_root + " is not a folder");
  }
}

Server::~Server() {
  if (impl_->listener.joinable() || impl_->loader.joinable()) {
    stop();
    wait();
  }
}

int Server::start() {
  Impl& s = *impl_;
  const auto& o = s.o;
  s.metrics.set_queue_depth([&s] { return s.queue.depth(); });
  s.routes();
  const size_t threads = static_cast<size_t>(o.http_threads);
  s.http.new_task_queue = [threads] { return new BoundedPool(threads, threads); };
  s.http.set_payload_max_length(static_cast<size_t>(o.max_body_mb * 1024 * 1024));
  s.http.set_read_timeout(o.timeout_s, 0);
  s.http.set_write_timeout(o.timeout_s, 0);
  // headers and body leave in separate writes: with Nagle's algorithm the body would wait for
  // the client's delayed ACK (~40 ms per answer on Linux)
  s.http.set_tcp_nodelay(true);
  s.http.set_keep_alive_timeout(5);
  s.http.set_keep_alive_max_count(1000);
  if (o.port == 0) {
    s.port = s.http.bind_to_any_port(o.host);
  } else {
    s.port = s.http.bind_to_port(o.host, o.port) ? o.port : -1;
  }
  if (s.port <= 0) {
    throw std::runtime_error(
        fmt::format("serve: cannot listen on {}:{} (address in use, or not "
                    "an address of this machine?)",
                    o.host, o.port));
  }
  if (!s.http.raise_backlog(SOMAXCONN)) {
    log::warn("[serve] cannot raise the listen backlog: {}", std::strerror(errno));
  }
  s.listener = std::thread([&s] {
    s.http.listen_after_bind();
    s.listener_done = true;
  });
  s.loader = std::thread([this] {
    impl_->load();
    if (impl_->failed) stop();
  });
  return s.port;
}

void Server::stop() {
  Impl& s = *impl_;
  s.stopping = true;
  // listen_after_bind() may not have started yet: stop() before it runs would be lost
  while (s.listener.joinable() && !s.listener_done && !s.http.is_running()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  s.http.stop();
}

int Server::wait() {
  Impl& s = *impl_;
  if (s.listener.joinable()) s.listener.join();  // every HTTP thread done: nothing in flight
  if (s.loader.joinable()) s.loader.join();
  s.queue.stop();
  if (s.model_thread.joinable()) s.model_thread.join();
  return s.failed ? 1 : 0;
}

bool Server::ready() const { return impl_->ready; }

}  // namespace xmodal::serve
