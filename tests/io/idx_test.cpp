#include "xmodal/io/idx.h"

#include <gtest/gtest.h>

#include <filesystem>

namespace xmodal::io {
namespace {

TEST(Idx, ParsesAndRejectsMalformedData) {
  std::string bytes("\x00\x00\x08\x02\x00\x00\x00\x02\x00\x00\x00\x03", 12);
  bytes += std::string("\x01\x02\x03\x04\x05\x06", 6);
  const IdxArray a = parse_idx(bytes, "x.idx");
  EXPECT_EQ(a.shape, (std::vector<int64_t>{2, 3}));
  EXPECT_EQ(a.item_size(), 3);
  EXPECT_EQ(a.data[5], 6);
  EXPECT_THROW(parse_idx(bytes.substr(0, 15), "x.idx"), std::runtime_error);  // truncated
  EXPECT_THROW(parse_idx(bytes + "z", "x.idx"), std::runtime_error);          // trailing bytes
  std::string wrong_type = bytes;
  wrong_type[2] = 0x0D;
  try {
    parse_idx(wrong_type, "x.idx");
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("x.idx: ", 0), 0u);
  }
  EXPECT_THROW(read_idx("/nonexistent.gz"), std::runtime_error);
}

TEST(Idx, ReadsFashionMnist) {
  const std::string path = "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz";
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "dataset-fashion-mnist is not installed";
  const IdxArray labels = read_idx(path);
  EXPECT_EQ(labels.shape, std::vector<int64_t>{10000});
  const IdxArray images = read_idx("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz");
  EXPECT_EQ(images.shape, (std::vector<int64_t>{10000, 28, 28}));
}

}  // namespace
}  // namespace xmodal::io
