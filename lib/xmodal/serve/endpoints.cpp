// Every endpoint of `xmodal serve` in one table (docs/serving.md): the quick ones answered on an
// io thread, the model endpoints as parse (worker thread) -> run (model thread, batched) ->
// to_json (worker thread).
#include <nlohmann/json.hpp>

#include <stdexcept>

#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/config/config.h"
#include "xmodal/core/files.h"
#include "xmodal/core/logging.h"
#include "xmodal/infer/json.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/image.h"
#include "xmodal/serve/request.h"
#include "xmodal/serve/state.h"
#include "xmodal/tasks/task.h"

namespace xmodal::serve {
namespace {
using nlohmann::json;

// ---- the io-thread endpoints

void health(ServerState& s, const HttpRequest&, HttpResponse& res) {
  if (s.ready) return set_json(res, 200, json{{"status", "ok"}});
  res.headers.emplace_back("Retry-After", "1");
  set_json(res, 503, json{{"status", s.failed ? "failed" : "loading"}});
}

void metrics(ServerState& s, const HttpRequest&, HttpResponse& res) {
  res.status = 200;
  res.content_type = "text/plain; version=0.0.4; charset=utf-8";
  res.body = s.metrics.render();
}

void model_info(ServerState& s, const HttpRequest& req, HttpResponse& res) {
  if (!s.ready) {
    res.headers.emplace_back("Retry-After", "1");
    return s.send_error(req, res, 503, ErrorKind::loading, "the model is loading; retry shortly");
  }
  const auto& m = s.predictor->loaded();
  const auto& c = m.config;
  const auto& o = s.o;
  json j = {{"task", config::to_string(c.task)},
            {"checkpoint", m.checkpoint},
            {"step", m.step},
            {"quantization", config::to_string(m.quantization)},
            {"image_size", c.data.image_size},
            {"max_text_len", c.data.max_text_len},
            {"reads_text", tasks::task(c.task).reads_text()},
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
  if (infer::has_embeddings(m)) j["embed_dim"] = c.model.retrieval.embed_dim;
  if (s.index) {
    j["index"] = {{"dir", o.index}, {"images", s.index->size()}, {"backend", s.index->backend()}};
  }
  set_json(res, 200, j);
}

// ---- what the model endpoints' items share

// The item's image (base64 "image" or a path under --image-root), or an empty Mat for none.
cv::Mat item_image(ServerState& s, const json& item, const std::string& at,
                   std::string& image_path) {
  const uint64_t max_pixels = io::max_image_pixels();
  std::string bytes, name;
  if (item.contains("image")) {
    if (item.contains("image_path")) {
      throw HttpError(400, ErrorKind::bad_field,
                      at + ": give \"image\" or \"image_path\", not both");
    }
    const auto& v = item["image"];
    if (!v.is_string()) {
      throw HttpError(400, ErrorKind::bad_field,
                      at + ".image: expected a base64 string, got " + std::string(v.type_name()));
    }
    name = at + ".image";
    bytes = decode_base64(v.get_ref<const std::string&>(), name);
  } else if (item.contains("image_path")) {
    const auto& v = item["image_path"];
    if (!v.is_string()) {
      throw HttpError(400, ErrorKind::bad_field,
                      at + ".image_path: expected a string, got " + std::string(v.type_name()));
    }
    if (s.o.image_root.empty()) {
      throw HttpError(403, ErrorKind::forbidden_path,
                      at + ".image_path: image paths are refused (the server was not started "
                           "with --image-root DIR); send the image as base64 in \"image\"");
    }
    image_path = v.get<std::string>();
    const std::string real = resolve_under(s.o.image_root, image_path, at + ".image_path");
    name = at + ".image_path " + image_path;
    try {
      bytes = read_file(real, static_cast<int64_t>(s.o.max_body_mb * 1024 * 1024) + 1);
    } catch (const std::exception& e) {
      throw HttpError(400, ErrorKind::bad_image, name + ": " + e.what());
    }
  } else {
    return {};
  }
  try {
    cv::Mat rgb = io::decode_image_rgb(bytes, name, max_pixels);
    s.metrics.image_decoded();
    return rgb;
  } catch (const std::exception& e) {
    throw HttpError(400, ErrorKind::bad_image, e.what());
  }
}

// The fields every model endpoint reads: an object of known fields, top_k, text. Returns the
// text (null: none) and whether the item has an image.
struct Fields {
  const std::string* text = nullptr;
  bool has_image = false;
  int top_k = 5;
};

Fields read_fields(const json& item, const std::string& at, const ModelEndpoint& e) {
  if (!item.is_object()) {
    throw HttpError(400, ErrorKind::bad_field,
                    at + ": expected a JSON object, got " + std::string(item.type_name()));
  }
  for (const auto& [key, value] : item.items()) {
    const bool known =
        key == "image" || key == "image_path" || key == "text" || (key == "top_k" && e.takes_top_k);
    if (!known) {
      throw HttpError(400, ErrorKind::bad_field,
                      at + ": unknown field \"" + clip(key) +
                          "\" (expected image or image_path, text" +
                          (e.takes_top_k ? ", top_k)" : ")"));
    }
  }
  Fields f;
  f.top_k = e.default_top_k;
  if (item.contains("top_k")) {
    const auto& v = item["top_k"];
    if (!v.is_number_integer() || v.get<int64_t>() < 1 || v.get<int64_t>() > 1000) {
      throw HttpError(400, ErrorKind::bad_field,
                      at + ".top_k: expected an integer from 1 to 1000, got " + clip(v.dump(), 40));
    }
    f.top_k = static_cast<int>(v.get<int64_t>());
  }
  if (item.contains("text")) {
    const auto& v = item["text"];
    if (!v.is_string()) {
      throw HttpError(400, ErrorKind::bad_field,
                      at + ".text: expected a string, got " + std::string(v.type_name()));
    }
    f.text = &v.get_ref<const std::string&>();
  }
  f.has_image = item.contains("image") || item.contains("image_path");
  return f;
}

// ---- POST /v1/predict: what `xmodal predict` answers for each item

extern const ModelEndpoint kPredict;

ParsedItem parse_predict(ServerState& s, const json& item, const std::string& at) {
  const Fields f = read_fields(item, at, kPredict);
  if (!f.has_image) throw HttpError(400, ErrorKind::bad_field, at + ": missing field \"image\"");
  if (f.text == nullptr && tasks::task(s.predictor->loaded().config.task).reads_text()) {
    throw HttpError(400, ErrorKind::bad_field, at + ": missing field \"text\"");
  }
  ParsedItem p;
  p.top_k = f.top_k;
  if (f.text != nullptr) p.text = *f.text;
  const cv::Mat rgb = item_image(s, item, at, p.image_path);
  try {
    p.input = s.predictor->prepare(rgb, p.text);
  } catch (const std::invalid_argument& e) {
    throw HttpError(400, ErrorKind::bad_field, at + ".text: " + e.what());
  }
  return p;
}

std::vector<ItemResult> run_predict(ServerState& s, const std::vector<const ParsedItem*>& items) {
  std::vector<const infer::PreparedInput*> inputs;
  std::vector<int> top_k;
  for (const auto* item : items) {
    inputs.push_back(item->input.get());
    top_k.push_back(item->top_k);
  }
  auto answers = s.predictor->run(inputs, top_k);
  std::vector<ItemResult> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) out[i].answer = std::move(answers[i]);
  return out;
}

json predict_json(const ItemResult& r, const ParsedItem& item) {
  // what `xmodal predict` prints: the input's text (and its image when it was a path)
  json j = infer::to_json(r.answer);
  j["text"] = item.text;
  if (!item.image_path.empty()) j["image"] = item.image_path;
  return j;
}

const ModelEndpoint kPredict{true, 5, nullptr, parse_predict, run_predict, predict_json};

// ---- POST /v1/caption: a caption model's beam, as /v1/predict answers it (no text needed)

void check_caption(const ServerState& s) {
  const auto task = s.predictor->loaded().config.task;
  if (task != config::Task::caption) {
    throw HttpError(400, ErrorKind::wrong_task,
                    "/v1/caption needs a caption checkpoint; this one is task " +
                        config::to_string(task) + " (use /v1/predict)");
  }
}

const ModelEndpoint kCaption{true, 5, check_caption, parse_predict, run_predict, predict_json};

// ---- POST /v1/embed and /v1/search: a retrieval model's encoders

// The image and/or text of an embed or search item.
ParsedItem parse_parts(ServerState& s, const json& item, const std::string& at,
                       const ModelEndpoint& e, const char* path) {
  const Fields f = read_fields(item, at, e);
  const auto& m = s.predictor->loaded();
  if (!infer::has_embeddings(m)) {
    throw HttpError(400, ErrorKind::wrong_task,
                    std::string(path) + " needs a retrieval checkpoint; this one is task " +
                        config::to_string(m.config.task) + " (use /v1/predict)");
  }
  const bool search = e.takes_top_k;
  if (search && f.has_image == (f.text != nullptr)) {
    throw HttpError(400, ErrorKind::bad_field, at + ": give exactly one of \"text\" and \"image\"");
  }
  if (!search && !f.has_image && f.text == nullptr) {
    throw HttpError(400, ErrorKind::bad_field, at + ": give \"image\" and/or \"text\"");
  }
  if (f.text != nullptr && f.text->find_first_not_of(" \t\r\n") == std::string::npos) {
    throw HttpError(400, ErrorKind::bad_field, at + ".text: an empty text");
  }
  ParsedItem p;
  p.top_k = f.top_k;
  const cv::Mat rgb = item_image(s, item, at, p.image_path);
  p.input = s.predictor->prepare_parts(rgb, f.text);
  return p;
}

infer::Embeddings embed_items(ServerState& s, const std::vector<const ParsedItem*>& items) {
  std::vector<const infer::PreparedInput*> inputs;
  for (const auto* item : items) inputs.push_back(item->input.get());
  return s.predictor->embed(inputs);
}

extern const ModelEndpoint kEmbed;

ParsedItem parse_embed(ServerState& s, const json& item, const std::string& at) {
  return parse_parts(s, item, at, kEmbed, "/v1/embed");
}

std::vector<ItemResult> run_embed(ServerState& s, const std::vector<const ParsedItem*>& items) {
  const infer::Embeddings e = embed_items(s, items);
  std::vector<ItemResult> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    out[i].image_embedding = e.image[i];
    out[i].text_embedding = e.text[i];
  }
  return out;
}

json embed_json(const ItemResult& r, const ParsedItem&) {
  json j = json::object();
  if (r.image_embedding.defined()) j["image_embedding"] = infer::embedding_json(r.image_embedding);
  if (r.text_embedding.defined()) j["text_embedding"] = infer::embedding_json(r.text_embedding);
  j["dim"] = (r.image_embedding.defined() ? r.image_embedding : r.text_embedding).numel();
  return j;
}

const ModelEndpoint kEmbed{false, 5, nullptr, parse_embed, run_embed, embed_json};

extern const ModelEndpoint kSearch;

void check_search(const ServerState& s) {
  if (!s.index) {
    throw HttpError(404, ErrorKind::no_index,
                    "/v1/search needs an index: start the server with --index INDEX_DIR");
  }
}

ParsedItem parse_search(ServerState& s, const json& item, const std::string& at) {
  return parse_parts(s, item, at, kSearch, "/v1/search");
}

// One query per item, its image or its text; the index searched once for the batch.
std::vector<ItemResult> run_search(ServerState& s, const std::vector<const ParsedItem*>& items) {
  const infer::Embeddings e = embed_items(s, items);
  std::vector<torch::Tensor> queries;
  int64_t k = 1;
  for (size_t i = 0; i < items.size(); ++i) {
    queries.push_back(e.image[i].defined() ? e.image[i] : e.text[i]);
    k = std::max<int64_t>(k, items[i]->top_k);
  }
  auto hits = s.index->search(torch::stack(queries), k);
  std::vector<ItemResult> out(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    for (auto& h : hits[i]) {
      if (h.rank > items[i]->top_k) break;
      out[i].hits.push_back(std::move(h));
    }
  }
  return out;
}

json search_json(const ItemResult& r, const ParsedItem&) {
  json results = json::array();
  for (const auto& h : r.hits) results.push_back(infer::to_json(h));
  return json{{"results", results}};
}

const ModelEndpoint kSearch{true, 10, check_search, parse_search, run_search, search_json};

}  // namespace

const std::vector<Endpoint>& endpoints() {
  // The quick endpoints run on the io thread, so that slow clients and busy workers never
  // delay them; the ones that wait for the model on a worker.
  static const std::vector<Endpoint> table = {
      {"GET", "/health", RunOn::io_thread, health, nullptr},
      {"GET", "/metrics", RunOn::io_thread, metrics, nullptr},
      {"GET", "/v1/model", RunOn::io_thread, model_info, nullptr},
      {"POST", "/v1/predict", RunOn::worker, nullptr, &kPredict},
      {"POST", "/v1/caption", RunOn::worker, nullptr, &kCaption},
      {"POST", "/v1/embed", RunOn::worker, nullptr, &kEmbed},
      {"POST", "/v1/search", RunOn::worker, nullptr, &kSearch},
  };
  return table;
}

void ServerState::handle_items(const HttpRequest& req, HttpResponse& res, int group) {
  const ModelEndpoint& endpoint = *endpoints().at(static_cast<size_t>(group)).model;
  if (!ready) {
    res.headers.emplace_back("Retry-After", "1");
    return send_error(req, res, 503, ErrorKind::loading, "the model is loading; retry shortly");
  }
  json parsed;
  try {
    if (endpoint.check != nullptr) endpoint.check(*this);
    parsed = parse_body(req.body);
  } catch (const HttpError& e) {
    return send_error(req, res, e.status(), e.kind(), e.what());
  }
  const bool single = parsed.is_object();
  if (!single && !parsed.is_array()) {
    return send_error(
        req, res, 400, ErrorKind::bad_json,
        "expected a JSON object or an array of objects, got " + std::string(parsed.type_name()));
  }
  const json items = single ? json::array({std::move(parsed)}) : std::move(parsed);
  if (items.empty())
    return send_error(req, res, 400, ErrorKind::bad_field, "an empty list of items");
  if (items.size() > static_cast<size_t>(o.max_items)) {
    return send_error(
        req, res, 413, ErrorKind::too_many_items,
        fmt::format("{} items in one request; at most --max-items {}", items.size(), o.max_items));
  }
  if (items.size() > static_cast<size_t>(o.queue)) {  // it could never fit: not a 503
    return send_error(req, res, 413, ErrorKind::too_many_items,
                      fmt::format("{} items in one request; the queue holds at most --queue {}",
                                  items.size(), o.queue));
  }
  auto job = std::make_shared<QueuedItem::Job>();
  const size_t n = items.size();
  job->endpoint = &endpoint;
  job->items.resize(n);
  job->results.resize(n);
  std::vector<std::optional<HttpError>> errors(n);
  std::vector<QueuedItem> queued;
  for (size_t i = 0; i < n; ++i) {
    const std::string at = single ? std::string("body") : fmt::format("items[{}]", i);
    try {
      job->items[i] = endpoint.parse(*this, items[i], at);
      queued.push_back(QueuedItem{group, Clock::now(), job, i});
    } catch (const HttpError& e) {
      errors[i] = e;
    } catch (const std::exception& e) {
      errors[i] = HttpError(400, ErrorKind::bad_field, at + ": " + e.what());
    }
  }
  if (!queued.empty()) {
    job->remaining = queued.size();
    for (auto& q : queued) q.enqueued = Clock::now();
    const size_t count = queued.size();
    if (!queue.push(queued)) {
      const bool stopping = http->stopping();
      res.headers.emplace_back("Retry-After", "1");
      return send_error(req, res, 503, stopping ? ErrorKind::stopping : ErrorKind::queue_full,
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
      return send_error(req, res, 504, ErrorKind::timeout,
                        fmt::format("no answer from the model within {} s", limit.count()));
    }
  }
  json answer = json::array();
  for (size_t i = 0; i < n; ++i) {
    if (errors[i]) {
      const HttpError& e = *errors[i];
      metrics.error(e.kind());
      log::warn("[serve] {} {} {} from {}: {}", e.status(), req.method, endpoint_label(req.path),
                req.remote_addr, e.what());
      if (single) return set_json(res, e.status(), infer::error_json(e.what()));
      answer.push_back(infer::error_json(e.what()));
      continue;
    }
    const ItemResult& r = job->results[i];
    if (!r.error.empty()) {
      if (single) return set_json(res, 500, infer::error_json(r.error));
      answer.push_back(infer::error_json(r.error));
      continue;
    }
    answer.push_back(endpoint.to_json(r, job->items[i]));
  }
  set_json(res, 200, single ? answer[0] : answer);
}

}  // namespace xmodal::serve
