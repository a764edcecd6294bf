#include "xmodal/io/torch_pickle.h"

#include <caffe2/serialize/inline_container.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "../support/fixtures.h"
#include "../support/temp_dir.h"

namespace xmodal::io {
namespace {

using namespace xmodal::testing;

std::string data(const std::string& relative) {
  return std::string(XMODAL_TEST_DATA) + "/" + relative;
}

std::string read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

TEST(TorchPickle, ReadsAHuggingFaceBertBinLikeItsSafetensorsCopy) {
  // The real pytorch_model.bin (an OrderedDict, pickle protocol 2) and the same weights written
  // to safetensors by PyTorch itself (scripts/make_model_fixtures.py).
  const auto bin = load_torch_state_dict(data("models/tiny_bert/pytorch_model.bin"));
  const auto reference = load_fixture("models/bert_tiny_reference.safetensors");
  EXPECT_EQ(bin.size(), 24u);
  int compared = 0;
  for (const auto& [name, t] : bin) {
    const auto it = reference.find(name);
    if (it == reference.end()) continue;
    ASSERT_EQ(t.scalar_type(), it->second.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(t, it->second)) << name;
    ++compared;
  }
  EXPECT_GE(compared, 20);
  EXPECT_EQ(bin.at("bert.embeddings.position_ids").scalar_type(), torch::kInt64);
  EXPECT_EQ(bin.at("bert.embeddings.word_embeddings.weight").sizes(),
            torch::IntArrayRef({402, 16}));
}

TEST(TorchPickle, HonoursStorageOffsetsOfViewsSharingAStorage) {
  // hf_vit's query/key/value are chunks of one in_proj storage (torch.save keeps them shared).
  const auto bin = load_torch_state_dict(data("models/hf_vit/pytorch_model.bin"));
  const auto& q = bin.at("vit.encoder.layer.0.attention.attention.query.weight");
  const auto& k = bin.at("vit.encoder.layer.0.attention.attention.key.weight");
  EXPECT_EQ(q.sizes(), torch::IntArrayRef({32, 32}));
  EXPECT_FALSE(torch::equal(q, k));
  const auto& qb = bin.at("vit.encoder.layer.1.attention.attention.value.bias");
  EXPECT_EQ(qb.sizes(), torch::IntArrayRef({32}));
}

TEST(TorchPickle, RefusesGlobalsOutsideTheAllowList) {
  // A pickle that would call os.system("echo pwned") under Python's pickle.
  static const char bytes[] =
      "\x80\x02"
      "cos\nsystem\n"
      "X\x0a\x00\x00\x00"
      "echo pwned"
      "\x85R.";
  const std::string evil(bytes, sizeof bytes - 1);
  const auto no_records = [](const std::string&) -> torch::Tensor { return {}; };
  const auto m = error_of([&] { unpickle_state_dict(evil, no_records, "evil.bin"); });
  EXPECT_NE(m.find("evil.bin"), std::string::npos) << m;
  EXPECT_NE(m.find("'os.system'"), std::string::npos) << m;
}

TEST(TorchPickle, TruncatedCorruptAndForeignFilesFailNamingTheFile) {
  TempDir dir;
  const std::string good = read_bytes(data("models/tiny_bert/pytorch_model.bin"));
  const auto cut = dir.write("cut.bin", good.substr(0, good.size() / 2));
  EXPECT_NE(error_of([&] { load_torch_state_dict(cut); }).find(cut), std::string::npos);
  const auto text = dir.write("text.bin", "not a checkpoint");
  EXPECT_NE(error_of([&] { load_torch_state_dict(text); }).find("not a zip archive"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              load_torch_state_dict(dir.path().string() + "/none.bin");
            }).find("cannot open"),
            std::string::npos);

  // Every truncation of data.pkl is an error, never a crash or a hang.
  const auto records = [](const std::string&) { return torch::zeros({4096}, torch::kUInt8); };
  std::string pickle;
  {
    caffe2::serialize::PyTorchStreamReader reader(data("models/tiny_bert/pytorch_model.bin"));
    auto [ptr, size] = reader.getRecord("data.pkl");
    pickle.assign(static_cast<const char*>(ptr.get()), size);
  }
  for (size_t n = 0; n < pickle.size(); n += 7) {
    EXPECT_THROW(unpickle_state_dict(pickle.substr(0, n), records, "p"), std::runtime_error) << n;
  }
  // Storage records whose size disagrees with the pickle are named.
  const auto m = error_of([&] { unpickle_state_dict(pickle, records, "p"); });
  EXPECT_NE(m.find("record data/0 has 4096 bytes"), std::string::npos) << m;
}

}  // namespace
}  // namespace xmodal::io
