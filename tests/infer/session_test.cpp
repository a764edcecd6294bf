// infer::Session on the committed checkpoint of tests/data/checkpoint_1_13 (task vqa, hidden 16,
// step 4): the overrides it applies, the threads, the device, eval mode, quantization, and what
// it refuses (validation, the caller's check, devices, int8 off the CPU).
#include "xmodal/infer/session.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <stdexcept>
#include <string>

#include "xmodal/core/cpu.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/models/linear.h"
#include "xmodal_test_paths.h"

namespace xmodal::infer {
namespace {

namespace fs = std::filesystem;

const std::string kCheckpoint = std::string(XMODAL_TEST_DATA) + "/checkpoint_1_13/checkpoint";

// The model's logits for one image (fixed noise) and one question.
torch::Tensor logits(checkpoint::LoadedModel& m, const c10::Device& device) {
  torch::manual_seed(3);
  const auto image = torch::rand({1, 3, 32, 32}) * 2 - 1;
  const auto e = m.artifacts.tokenizer->encode("what is the leftmost item?", 32);
  const auto row = [&](const std::vector<int64_t>& v) {
    return torch::tensor(v, torch::kInt64).unsqueeze(0).to(device);
  };
  torch::NoGradGuard no_grad;
  return m.model->forward(image.to(device), row(e.ids), row(e.mask), row(e.types))
      .at("logits")
      .to(torch::kCPU);
}

// The message of what `open` throws as E ("" when it throws nothing, which fails the test).
template <class E>
std::string error_of(const SessionOptions& options) {
  try {
    Session::open(options);
  } catch (const E& e) {
    return e.what();
  }
  ADD_FAILURE() << "Session::open did not throw";
  return "";
}

class SessionOpen : public ::testing::Test {
 protected:
  void SetUp() override { log::set_level(log::Level::error); }
  void TearDown() override { log::set_level(log::Level::info); }
};

TEST_F(SessionOpen, AppliesTheOverridesAndSetsThreadsDeviceAndEvalMode) {
  at::set_num_threads(2);  // run.threads=1 must bring it to 1
  Session s = Session::open(
      {kCheckpoint, {"run.device=cpu", "run.threads=1", "eval.batch_size=3"}, "test"});
  auto& m = s.loaded;
  EXPECT_EQ(m.checkpoint, fs::canonical(kCheckpoint).string());
  EXPECT_EQ(m.step, 4);
  EXPECT_EQ(m.config.task, config::Task::vqa);
  EXPECT_EQ(m.config.eval.batch_size, 3);
  EXPECT_EQ(m.config.run.device, "cpu");
  EXPECT_EQ(m.config.run.threads, 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(m.artifacts.class_names.size(), 11u);
  ASSERT_NE(m.artifacts.tokenizer, nullptr);
  EXPECT_TRUE(s.device.is_cpu());
  EXPECT_EQ(s.precision, config::Precision::fp32);
  EXPECT_EQ(m.quantization, config::Quantize::none);
  EXPECT_FALSE(models::has_int8(*m.model));
  for (const auto& module : m.model->modules(/*include_self=*/true)) {
    EXPECT_FALSE(module->is_training()) << module->name();
  }
  for (const auto& p : m.model->parameters()) EXPECT_TRUE(p.device().is_cpu());
  // The weights are the stored ones: the same logits as the checkpoint loaded directly.
  auto direct = checkpoint::load_trained_model(kCheckpoint);
  const auto expected = logits(direct, torch::kCPU);
  EXPECT_EQ(expected.sizes(), torch::IntArrayRef({1, 11}));
  EXPECT_TRUE(torch::equal(logits(m, s.device), expected));
}

// eval.precision bf16: the model computes under autocast where the CPU has bf16 products;
// elsewhere the session refuses it, naming the key.
TEST_F(SessionOpen, EvalPrecisionBf16SetsTheModelsComputeTypeOrIsRefusedByName) {
  const auto& cpu = cpu_info();
  const std::vector<std::string> overrides = {"run.device=cpu", "eval.precision=bf16"};
  if (!cpu.has("avx512_bf16") && !cpu.has("amx_bf16")) {
    try {
      Session::open({kCheckpoint, overrides, "predict"});
      FAIL() << "bf16 accepted on a CPU without AVX512-BF16 or AMX";
    } catch (const std::invalid_argument& e) {
      EXPECT_NE(std::string(e.what()).find("eval.precision bf16 on the CPU needs AVX512-BF16"),
                std::string::npos)
          << e.what();
    }
    return;
  }
  Session s = Session::open({kCheckpoint, overrides, "predict"});
  EXPECT_EQ(s.precision, config::Precision::bf16);
  EXPECT_EQ(s.loaded.model->compute_dtype, torch::kBFloat16);
  const auto q = logits(s.loaded, s.device);
  EXPECT_EQ(q.scalar_type(), torch::kFloat32);
  auto direct = checkpoint::load_trained_model(kCheckpoint);
  EXPECT_TRUE(torch::allclose(q, logits(direct, torch::kCPU), 5e-2, 5e-2));
}

TEST_F(SessionOpen, QuantizesAsEvalQuantizeSaysUnlessTheCallerDecides) {
  Session by_config =
      Session::open({kCheckpoint, {"run.device=cpu", "eval.quantize=int8"}, "predict"});
  EXPECT_EQ(by_config.loaded.quantization, config::Quantize::int8);
  EXPECT_TRUE(models::has_int8(*by_config.loaded.model));
  const auto q = logits(by_config.loaded, by_config.device);
  EXPECT_EQ(q.sizes(), torch::IntArrayRef({1, 11}));
  EXPECT_TRUE(torch::isfinite(q).all().item<bool>());

  SessionOptions explicit_none(kCheckpoint, {"run.device=cpu", "eval.quantize=int8"}, "predict");
  explicit_none.quantize = config::Quantize::none;
  const Session none = Session::open(explicit_none);
  EXPECT_EQ(none.loaded.quantization, config::Quantize::none);
  EXPECT_FALSE(models::has_int8(*none.loaded.model));

  // xmodal quantize's way: int8 whatever eval.quantize says, the config left as stored.
  SessionOptions explicit_int8(kCheckpoint, {"run.device=cpu"}, "quantize");
  explicit_int8.quantize = config::Quantize::int8;
  const Session int8 = Session::open(explicit_int8);
  EXPECT_EQ(int8.loaded.quantization, config::Quantize::int8);
  EXPECT_TRUE(models::has_int8(*int8.loaded.model));
  EXPECT_EQ(int8.loaded.config.eval.quantize, config::Quantize::none);
}

TEST_F(SessionOpen, RefusesAnInt8ModelOffTheCpuBeforeMovingIt) {
  // Thrown before the model moves, so no GPU is needed to see it.
  SessionOptions options(kCheckpoint, {"eval.quantize=int8"}, "predict");
  options.device = c10::Device(c10::kCUDA, 0);
  EXPECT_NE(error_of<std::runtime_error>(options).find("an int8 model runs on the CPU only"),
            std::string::npos);
}

TEST_F(SessionOpen, AnExplicitDeviceWinsOverRunDevice) {
  const std::string missing = "cuda:99";  // no machine has 100 GPUs
  SessionOptions on_cpu(kCheckpoint, {"run.device=" + missing}, "ceiling");
  on_cpu.device = c10::Device(c10::kCPU);
  const Session s = Session::open(on_cpu);
  EXPECT_TRUE(s.device.is_cpu());
  EXPECT_EQ(s.loaded.config.run.device, missing);
  for (const auto& p : s.loaded.model->parameters()) EXPECT_TRUE(p.device().is_cpu());

  EXPECT_NE(error_of<std::runtime_error>({kCheckpoint, {"run.device=" + missing}, "predict"})
                .find("device 'cuda:99' requested"),
            std::string::npos);
}

TEST_F(SessionOpen, ValidatesTheConfigAfterTheOverrides) {
  const std::string invalid =
      error_of<ConfigError>({kCheckpoint, {"model.text.max_position=8"}, "index"});
  EXPECT_NE(invalid.find("model.text.max_position (8) must be >= data.max_text_len (32"),
            std::string::npos)
      << invalid;
  const std::string unknown = error_of<ConfigError>({kCheckpoint, {"eval.quantise=int8"}, "eval"});
  EXPECT_NE(unknown.find("unknown key eval.quantise (did you mean quantize?)"), std::string::npos)
      << unknown;
}

TEST_F(SessionOpen, TheCallersCheckSeesTheStoredCheckpointFirst) {
  SessionOptions options(kCheckpoint, {"model.text.max_position=8"}, "index");
  int calls = 0;
  options.check = [&](const checkpoint::LoadedModel& m) {
    ++calls;
    EXPECT_EQ(m.config.model.text.max_position, 64);  // before the overrides
    require_retrieval(m, "index");
  };
  const std::string refused = error_of<std::invalid_argument>(options);
  EXPECT_EQ(calls, 1);
  EXPECT_NE(refused.find("index needs a task retrieval checkpoint; "), std::string::npos)
      << refused;
  EXPECT_NE(refused.find("is task vqa"), std::string::npos) << refused;
}

TEST_F(SessionOpen, NamesAMissingCheckpoint) {
  EXPECT_EQ(error_of<std::invalid_argument>({"", {}, "search"}), "search: no checkpoint given");
  EXPECT_EQ(error_of<std::runtime_error>({"/nonexistent/checkpoint", {}, "predict"}),
            "checkpoint /nonexistent/checkpoint: no such file or directory");
}

}  // namespace
}  // namespace xmodal::infer
