// What the parts of `xmodal serve` share (internal to serve/): the options, the loaded model and
// index, the metrics and the model's queue. server.cpp owns it and its threads; endpoints.cpp
// reads it to answer requests.
#pragma once

#include <nlohmann/json.hpp>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "xmodal/infer/index.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/infer/prepared_input.h"
#include "xmodal/serve/batcher.h"
#include "xmodal/serve/http_server.h"
#include "xmodal/serve/metrics.h"
#include "xmodal/serve/server.h"

namespace xmodal::serve {

using Clock = std::chrono::steady_clock;

/// One item of a model endpoint's request, as its parse() read it.
struct ParsedItem {
  std::unique_ptr<infer::PreparedInput> input;
  int top_k = 5;
  std::string text;        ///< the item's text (predict echoes it)
  std::string image_path;  ///< the item's image_path, when it named one
};

/// One item's result from the model thread: what the endpoint's run() fills for it.
struct ItemResult {
  tasks::Answer answer;                           ///< predict
  torch::Tensor image_embedding, text_embedding;  ///< embed (undefined where none)
  std::vector<infer::SearchHit> hits;             ///< search, best first
  std::string error;                              ///< the model failed on the item's batch
};

struct ServerState;

/// A model endpoint: its items are read on a worker thread, run in batches on the model thread
/// (items of different endpoints never share a batch) and written back as JSON on the worker.
struct ModelEndpoint {
  /// Fields an item may have besides image, image_path and text.
  bool takes_top_k;
  int default_top_k;
  /// Refuses the request before its body is read for items (an HttpError), or does nothing.
  void (*check)(const ServerState& s);
  /// One item (a JSON value; `at` names it in messages: "body", "items[3]"): HttpError when
  /// it is malformed.
  ParsedItem (*parse)(ServerState& s, const nlohmann::json& item, const std::string& at);
  /// A batch of items on the model thread; one result per item.
  std::vector<ItemResult> (*run)(ServerState& s, const std::vector<const ParsedItem*>& items);
  /// One item's result as the response writes it.
  nlohmann::json (*to_json)(const ItemResult& result, const ParsedItem& item);
};

/// Every endpoint of the server, in one table (serve/endpoints.cpp).
struct Endpoint {
  const char* method;
  const char* path;
  RunOn run_on;
  /// Answers the request itself (the io-thread endpoints), or null for a model endpoint.
  void (*handle)(ServerState& s, const HttpRequest& req, HttpResponse& res);
  const ModelEndpoint* model;
};
const std::vector<Endpoint>& endpoints();

/// An item queued for the model thread.
struct QueuedItem {
  struct Job;
  int group = 0;  ///< the endpoint's row in endpoints(): items of one endpoint batch together
  Clock::time_point enqueued;
  std::shared_ptr<Job> job;
  size_t index = 0;
};

/// One request's items: the worker fills `items`, the model thread `results`, and the worker
/// waits until `remaining` is 0.
struct QueuedItem::Job {
  const ModelEndpoint* endpoint = nullptr;
  std::vector<ParsedItem> items;
  std::vector<ItemResult> results;
  std::mutex mutex;
  std::condition_variable done;
  size_t remaining = 0;
};

struct ServerState {
  explicit ServerState(const ServeOptions& options);

  ServeOptions o;
  std::unique_ptr<HttpServer> http;
  Metrics metrics;
  BatchQueue<QueuedItem> queue;
  std::unique_ptr<infer::Predictor> predictor;
  std::unique_ptr<infer::ImageIndex> index;
  std::atomic<bool> ready{false}, failed{false};
  std::string api_key;

  /// The path as the metrics label it: an endpoint's, or "other".
  std::string endpoint_label(const std::string& path) const;
  /// Counts and logs the error and answers {"error": message}.
  void send_error(const HttpRequest& req, HttpResponse& res, int status, ErrorKind kind,
                  const std::string& message);
  /// The model endpoints' request: items parsed, queued, run and written back.
  void handle_items(const HttpRequest& req, HttpResponse& res, int group);
  /// One batch of one endpoint's items on the model thread.
  void run_batch(std::vector<QueuedItem>& batch);
};

/// `res` as JSON (invalid UTF-8 replaced).
void set_json(HttpResponse& res, int status, const nlohmann::json& body);
/// The first line of an exception's message (c10::Error's without its C++ stack trace).
std::string what_of(const std::exception& e);

}  // namespace xmodal::serve
