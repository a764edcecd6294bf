// A tiny Fashion-scenes set for the training tests: 32 px canvases with 1-3 articles of 8-12 px.
#pragma once

#include <cstdint>
#include <filesystem>

#include "xmodal/data/scenes.h"

namespace xmodal::testing {

/// Options of such a set in `out` (6 questions per scene).
inline data::ScenesOptions tiny_scenes(const std::filesystem::path& out, int train, int val,
                                       int test, uint64_t seed) {
  data::ScenesOptions o;
  o.out = out.string();
  o.train = train;
  o.val = val;
  o.test = test;
  o.canvas = 32;
  o.max_items = 3;
  o.item_min = 8;
  o.item_max = 12;
  o.seed = seed;
  return o;
}

}  // namespace xmodal::testing
