// IDX files (the MNIST / Fashion-MNIST format), plain or gzip-compressed.
//
// Layout: 2 zero bytes, a type byte (0x08 = unsigned byte, the only type these data sets
// use), a dimension count, one big-endian uint32 per dimension, then the values row-major.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::io {

struct IdxArray {
  std::vector<int64_t> shape;  ///< e.g. [60000, 28, 28] for images, [60000] for labels
  std::vector<uint8_t> data;   ///< shape's product values, row-major

  int64_t count() const { return shape.empty() ? 0 : shape[0]; }
  /// Values per item (product of shape[1:]).
  int64_t item_size() const;
};

/// Reads `path` (gzip is detected by its magic bytes). Throws std::runtime_error naming the
/// file and what is wrong (bad magic, unsupported type, truncated data, trailing bytes).
IdxArray read_idx(const std::string& path);

/// Parses IDX bytes already in memory; `name` is used in messages.
IdxArray parse_idx(const std::string& bytes, const std::string& name);

}  // namespace xmodal::io
