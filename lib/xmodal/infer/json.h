// The one JSON form of the library's typed results, shared by `xmodal predict`, `explain`,
// `search` and the server (docs/cli.md "Prediction output", docs/serving.md). The library
// returns structs (tasks::Answer, Prediction, Explanation, SearchHit, embeddings); only the
// callers that print or send them turn them into JSON, here.
//   answer:      vqa {"answers": [{"answer": A, "probability": p}, ...]} (top-k);
//                counting {"categories": [{"category": C, "probability": p, "count": n}, ...]};
//                classify {"labels": [{"label": L, "probability": p}, ...]};
//                retrieval {"similarity": cos} (+ zero-shot "labels": [{"label", "probability",
//                "similarity"}, ...]); a non-finite number is null
//   prediction:  {"image": P, "text": T} + the answer, or {"image", "text", "error": "..."}
#pragma once

#include <torch/types.h>

#include <nlohmann/json.hpp>

#include <string>

#include "xmodal/infer/index.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/tasks/task.h"

namespace xmodal::infer {

/// The answer's fields (an object).
nlohmann::json to_json(const tasks::Answer& answer);
/// "image" and "text", then the answer's fields or "error".
nlohmann::json to_json(const Prediction& prediction);
/// "answer", "probability", "method", "image_weight" (the patches' share), "grid",
/// "patch_weights" and "tokens": [{"token", "weight"}, ...].
nlohmann::json to_json(const Explanation& explanation);
/// {"rank", "path", "score"}.
nlohmann::json to_json(const SearchHit& hit);
/// An embedding [E] as a list of numbers.
nlohmann::json embedding_json(const torch::Tensor& embedding);
/// An error result: {"error": message}.
nlohmann::json error_json(const std::string& message);
/// One line of JSON; text that is not valid UTF-8 (an input echoed back) is replaced by U+FFFD,
/// never an exception.
std::string dump_line(const nlohmann::json& j);

}  // namespace xmodal::infer
