#include "xmodal/io/safetensors.h"

#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>

#include "../support/temp_dir.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal_test_paths.h"

namespace xmodal::io {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

const fs::path kDir = fs::path(XMODAL_TEST_DATA) / "safetensors";

json expected() {
  std::ifstream in(kDir / "EXPECTED.json");
  return json::parse(in);
}

std::string hex(const uint8_t* p, size_t n) {
  static const char* digits = "0123456789abcdef";
  std::string s;
  for (size_t i = 0; i < n; ++i) {
    s += digits[p[i] >> 4];
    s += digits[p[i] & 15];
  }
  return s;
}

TEST(SafeTensors, AcceptsEveryValidUpstreamVector) {
  const json all = expected()["upstream_rust_test_vectors"];
  int checked = 0;
  for (auto it = all.begin(); it != all.end(); ++it) {
    if (it.key().rfind("valid_", 0) != 0) continue;
    SCOPED_TRACE(it.key());
    const auto file = SafeTensorsFile::open(
        (kDir / "upstream_rust_test_vectors" / (it.key() + ".safetensors")).string());
    const json& want = it.value();
    EXPECT_EQ(file.names().size(), want["tensors"].size());
    for (auto t = want["tensors"].begin(); t != want["tensors"].end(); ++t) {
      const TensorInfo& info = file.info(t.key());
      EXPECT_EQ(info.dtype, t.value()["dtype"].get<std::string>());
      EXPECT_EQ(info.shape, t.value()["shape"].get<std::vector<int64_t>>());
      if (t.value().contains("data_hex")) {
        EXPECT_EQ(hex(file.data(t.key()), info.end - info.begin),
                  t.value()["data_hex"].get<std::string>());
      }
      if (t.value().contains("values")) {
        const auto values = file.tensor(t.key()).flatten();
        const auto want_values = t.value()["values"].get<std::vector<float>>();
        ASSERT_EQ(values.numel(), static_cast<int64_t>(want_values.size()));
        for (size_t i = 0; i < want_values.size(); ++i) {
          EXPECT_EQ(values[i].item<float>(), want_values[i]);
        }
      }
    }
    if (want.contains("metadata")) {
      EXPECT_EQ(file.metadata(), (want["metadata"].get<std::map<std::string, std::string>>()));
    }
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST(SafeTensors, RejectsEveryInvalidUpstreamVectorWithItsError) {
  const json all = expected()["upstream_rust_test_vectors"];
  int checked = 0;
  for (auto it = all.begin(); it != all.end(); ++it) {
    if (it.key().rfind("invalid_", 0) != 0) continue;
    SCOPED_TRACE(it.key());
    std::string variant = it.value().get<std::string>();
    variant = variant.substr(0, variant.find(' '));  // "InvalidHeader (Utf8Error)"
    const std::string path =
        (kDir / "upstream_rust_test_vectors" / (it.key() + ".safetensors")).string();
    try {
      SafeTensorsFile::open(path);
      ADD_FAILURE() << "accepted";
    } catch (const std::runtime_error& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind(path + ": ", 0), 0u) << message;
      EXPECT_NE(message.find("(" + variant + ")"), std::string::npos) << message;
    }
    ++checked;
  }
  EXPECT_EQ(checked, 10);
}

TEST(SafeTensors, ReadsSwiftTransformersFiles) {
  const json all = expected();
  for (const char* name :
       {"swift_tensor-1d-int32.safetensors", "swift_tensor-2d-float64.safetensors",
        "swift_tensor-3d-float32.safetensors", "swift_tensor-4d-float32.safetensors"}) {
    SCOPED_TRACE(name);
    const json& want = all[name];
    const auto file = SafeTensorsFile::open((kDir / name).string());
    const auto t = file.tensor(want["name"].get<std::string>());
    EXPECT_EQ(t.sizes().vec(), want["shape"].get<std::vector<int64_t>>());
    const auto flat = t.to(torch::kFloat64).flatten();
    const auto values = want["flat"].get<std::vector<double>>();
    ASSERT_EQ(flat.numel(), static_cast<int64_t>(values.size()));
    for (size_t i = 0; i < values.size(); ++i) EXPECT_EQ(flat[i].item<double>(), values[i]);
  }
}

TEST(SafeTensors, WriterMatchesTheReferenceSerializerByteForByte) {
  const fs::path dir = kDir / "upstream_rust_test_vectors";
  auto file_bytes = [&](const char* name) { return read_file((dir / name).string()); };
  EXPECT_EQ(serialize_safetensors({}), file_bytes("valid_test_empty_no_tensors.safetensors"));
  EXPECT_EQ(serialize_safetensors({}, {{"framework", "pt"}}),
            file_bytes("valid_test_empty_with_metadata_framework_pt.safetensors"));
  const auto values = torch::arange(6, torch::kFloat32);
  EXPECT_EQ(serialize_safetensors({{"attn.0", values.reshape({1, 2, 3})}}),
            file_bytes("valid_test_serialization_attn0_F32_1x2x3.safetensors"));
  EXPECT_EQ(serialize_safetensors({{"attn0", values.reshape({1, 1, 2, 3})}}),
            file_bytes("valid_test_serialization_forced_alignement_attn0_F32_1x1x2x3.safetensors"));
}

TEST(SafeTensors, RoundTripsEveryLibTorchDtypeScalarsEmptyAndMetadata) {
  xmodal::testing::TempDir dir;
  std::map<std::string, torch::Tensor> tensors;
  torch::manual_seed(0);
  for (auto type : {torch::kFloat32, torch::kFloat64, torch::kFloat16, torch::kBFloat16,
                    torch::kInt64, torch::kInt32, torch::kInt16, torch::kInt8, torch::kUInt8}) {
    tensors[std::string("t_") + c10::toString(type)] = (torch::randn({3, 5}) * 50).to(type);
  }
  tensors["bool"] = torch::rand({7}) > 0.5;
  tensors["scalar"] = torch::tensor(3.5);
  tensors["empty"] = torch::zeros({2, 0});
  tensors["strided \"name\" ünï"] = torch::randn({4, 6}).t();  // non-contiguous, odd name
  const std::string path = (dir.path() / "w.safetensors").string();
  save_safetensors(path, tensors, {{"format", "pt"}, {"note", "a\"b"}});
  const auto file = SafeTensorsFile::open(path);
  EXPECT_EQ(file.metadata().at("note"), "a\"b");
  ASSERT_EQ(file.names().size(), tensors.size());
  for (const auto& [name, t] : tensors) {
    SCOPED_TRACE(name);
    const auto back = file.tensor(name);
    EXPECT_EQ(back.scalar_type(), t.scalar_type());
    EXPECT_EQ(back.sizes(), t.sizes());
    EXPECT_TRUE(torch::equal(back, t));
  }
  EXPECT_EQ(load_safetensors(path).size(), tensors.size());
  for (const auto& entry : fs::directory_iterator(dir.path())) {  // no temporary left behind
    EXPECT_EQ(entry.path().filename(), "w.safetensors");
  }
}

TEST(SafeTensors, TruncatedAndCorruptFilesNameTheFile) {
  const std::string good = serialize_safetensors({{"w", torch::ones({4, 4})}});
  for (size_t cut : {good.size() - 1, good.size() - 64, size_t{20}, size_t{5}}) {
    try {
      SafeTensorsFile::from_bytes(good.substr(0, cut), "ckpt.safetensors");
      ADD_FAILURE() << "accepted a file cut to " << cut;
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()).rfind("ckpt.safetensors: ", 0), 0u) << e.what();
    }
  }
  const std::string dup =
      std::string("\x40\0\0\0\0\0\0\0", 8) +
      "{\"a\":{\"dtype\":\"U8\",\"shape\":[],\"data_offsets\":[0,1]},\"a\":{}}  "
      "    x";
  EXPECT_THROW(
      {
        try {
          SafeTensorsFile::from_bytes(dup.substr(0, 8 + 0x40) + "x", "d");
        } catch (const std::runtime_error& e) {
          EXPECT_NE(std::string(e.what()).find("twice"), std::string::npos) << e.what();
          throw;
        }
      },
      std::runtime_error);
  EXPECT_THROW(SafeTensorsFile::open("/nonexistent.safetensors"), std::runtime_error);
}

TEST(SafeTensors, DtypesLibTorchLacksAreListedButNotConverted) {
  const auto file = SafeTensorsFile::open(
      (kDir / "upstream_rust_test_vectors" / "valid_test_serialization_fp4_F4_1x2.safetensors")
          .string());
  EXPECT_EQ(file.info("attn.0").dtype, "F4");
  EXPECT_THROW(file.tensor("attn.0"), std::runtime_error);
  EXPECT_THROW(file.info("missing"), std::out_of_range);
}

}  // namespace
}  // namespace xmodal::io
