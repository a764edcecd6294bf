#include "xmodal/infer/json.h"

namespace xmodal::infer {
using nlohmann::json;

namespace {

// The list's name and each entry's key for an answer kind.
std::pair<const char*, const char*> names_of(tasks::Answer::Kind kind) {
  switch (kind) {
    case tasks::Answer::Kind::answers:
      return {"answers", "answer"};
    case tasks::Answer::Kind::categories:
      return {"categories", "category"};
    case tasks::Answer::Kind::labels:
      return {"labels", "label"};
    case tasks::Answer::Kind::captions:
      return {"captions", "caption"};
    case tasks::Answer::Kind::none:
      break;
  }
  return {nullptr, nullptr};
}

}  // namespace

json to_json(const tasks::Answer& answer) {
  json j = json::object();
  if (const auto [list, key] = names_of(answer.kind); list != nullptr) {
    json entries = json::array();
    for (const auto& c : answer.classes) {
      json e = {{key, c.name}, {"probability", tasks::finite_or_null(c.probability)}};
      if (c.count) e["count"] = *c.count;
      if (c.similarity) e["similarity"] = tasks::finite_or_null(*c.similarity);
      if (c.score) e["score"] = tasks::finite_or_null(*c.score);
      entries.push_back(std::move(e));
    }
    j[list] = std::move(entries);
    // a caption model's answer leads with its best caption
    if (answer.kind == tasks::Answer::Kind::captions && !answer.classes.empty()) {
      j["caption"] = answer.classes.front().name;
    }
  }
  if (answer.similarity) j["similarity"] = tasks::finite_or_null(*answer.similarity);
  return j;
}

json to_json(const Prediction& p) {
  json j = p.ok() ? to_json(p.answer) : error_json(p.error);
  j["image"] = p.image;
  j["text"] = p.text;
  return j;
}

json to_json(const Explanation& e) {
  json tokens = json::array();
  for (size_t i = 0; i < e.tokens.size(); ++i) {
    tokens.push_back({{"token", e.tokens[i]}, {"weight", e.token_weights[i]}});
  }
  double image_share = 0;
  for (double w : e.patch_weights) image_share += w;
  return {{"answer", e.answer}, {"probability", e.probability},
          {"method", e.method}, {"image_weight", image_share},
          {"grid", e.grid},     {"patch_weights", e.patch_weights},
          {"tokens", tokens}};
}

json to_json(const SearchHit& hit) {
  return {{"rank", hit.rank}, {"path", hit.path}, {"score", hit.score}};
}

json embedding_json(const torch::Tensor& embedding) {
  const auto c = embedding.to(torch::kCPU, torch::kFloat32).contiguous();
  return std::vector<float>(c.data_ptr<float>(), c.data_ptr<float>() + c.numel());
}

json error_json(const std::string& message) { return {{"error", message}}; }

std::string dump_line(const json& j) {
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace xmodal::infer
