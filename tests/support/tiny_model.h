// The config assignments of the tests' tiny image+text model: hidden 16, one layer, 2 heads in
// every encoder and the fusion, 16 px patches (for data.image_size 32).
#pragma once

#include <string>
#include <vector>

namespace xmodal::testing {

inline std::vector<std::string> tiny_model_sets() {
  return {"model.vision.patch_size=16", "model.vision.hidden=16",  "model.vision.layers=1",
          "model.vision.heads=2",       "model.vision.mlp_dim=32", "model.text.hidden=16",
          "model.text.layers=1",        "model.text.heads=2",      "model.text.intermediate=32",
          "model.fusion.hidden=16",     "model.fusion.layers=1",   "model.fusion.heads=2",
          "model.fusion.mlp_dim=32",    "model.head.hidden=16"};
}

}  // namespace xmodal::testing
