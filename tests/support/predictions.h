// Predictor results as the lines `xmodal predict` prints them (infer/json.h), for tests that
// compare or parse them.
#pragma once

#include <string>
#include <vector>

#include "xmodal/infer/json.h"
#include "xmodal/infer/predictor.h"

namespace xmodal::testing {

inline std::vector<std::string> json_lines(const std::vector<infer::Prediction>& predictions) {
  std::vector<std::string> out;
  for (const auto& p : predictions) out.push_back(infer::dump_line(infer::to_json(p)));
  return out;
}

}  // namespace xmodal::testing
