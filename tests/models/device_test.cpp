// The device-agnostic tests (tests/support/device.h): the model, a training step and a saved
// checkpoint on the device under test (XMODAL_TEST_DEVICE, cpu by default) give what the CPU
// gives. On a GPU this checks that every CPU-only path (the fused attention, xmodal's sgemm
// routing, the int8 Linear) is bypassed for CUDA tensors rather than reached with them.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "../support/device.h"
#include "../support/predictions.h"
#include "../support/tiny_model.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/models/factory.h"
#include "xmodal/models/model.h"
#include "xmodal/models/precision.h"
#include "xmodal/tasks/task.h"
#include "xmodal_test_paths.h"

namespace xmodal::models {
namespace {

using xmodal::testing::test_device;

config::Config tiny_config(config::Task task) {
  auto c = xmodal::testing::tiny_model_config();
  c.task = task;
  return c;
}

torch::Tensor task_loss(const ModelOutput& out, config::Task task) {
  if (task == config::Task::vqa) return out.at("logits").pow(2).sum();
  return out.at("presence").pow(2).sum() + out.at("counts").pow(2).sum();
}

struct Inputs {
  torch::Tensor images, ids, mask;
};

Inputs make_inputs() {
  torch::manual_seed(3);
  Inputs in{torch::randn({3, 3, 16, 16}), torch::randint(1, 30, {3, 6}),
            torch::ones({3, 6}, torch::kLong)};
  in.mask[2].narrow(0, 3, 3).zero_();
  return in;
}

class DeviceModel : public ::testing::Test {
 protected:
  void SetUp() override {
    // Products in full fp32 on the GPU too (no TF32), so the comparison is tight.
    at::globalContext().setAllowTF32CuBLAS(false);
  }
};

TEST_F(DeviceModel, ForwardAndGradientsMatchTheCpu) {
  const auto device = test_device();
  const Inputs in = make_inputs();
  for (auto task : {config::Task::vqa, config::Task::counting}) {
    SCOPED_TRACE(config::to_string(task) + " on " + device.str());
    torch::manual_seed(0);
    Model cpu = tasks::build_model(tiny_config(task), {30, 5});
    torch::manual_seed(0);
    Model dev = tasks::build_model(tiny_config(task), {30, 5});
    dev->to(device);
    for (Model* m : {&cpu, &dev}) (*m)->eval();  // no dropout: both compute the same function

    const auto out_cpu = cpu(in.images, in.ids, in.mask);
    const auto out_dev = dev(in.images.to(device), in.ids.to(device), in.mask.to(device));
    const auto& a = task == config::Task::vqa ? out_cpu.at("logits") : out_cpu.at("presence");
    const auto& b = task == config::Task::vqa ? out_dev.at("logits") : out_dev.at("presence");
    ASSERT_EQ(b.device(), device);
    EXPECT_TRUE(torch::allclose(a, b.cpu(), 1e-4, 1e-5)) << (a - b.cpu()).abs().max();

    task_loss(out_cpu, task).backward();
    task_loss(out_dev, task).backward();
    const auto pc = cpu->named_parameters();
    const auto pd = dev->named_parameters();
    for (const auto& item : pc) {
      const auto& g_cpu = item.value().grad();
      const auto& g_dev = pd[item.key()].grad();
      ASSERT_TRUE(g_cpu.defined() && g_dev.defined()) << item.key();
      EXPECT_TRUE(torch::allclose(g_cpu, g_dev.cpu(), 1e-3, 1e-4))
          << item.key() << ": " << (g_cpu - g_dev.cpu()).abs().max();
    }
  }
}

TEST_F(DeviceModel, Bf16AutocastStaysCloseToFp32) {
  const auto device = test_device();  // autocast runs on any CPU (emulated without bf16 units)
  const Inputs in = make_inputs();
  torch::manual_seed(0);
  Model model = tasks::build_model(tiny_config(config::Task::vqa), {30, 5});
  model->to(device);
  model->eval();
  const auto fp32 = model(in.images.to(device), in.ids.to(device), in.mask.to(device)).at("logits");
  torch::Tensor bf16;
  {
    models::AutocastGuard autocast(config::Precision::bf16, device);
    bf16 = model(in.images.to(device), in.ids.to(device), in.mask.to(device)).at("logits");
  }
  EXPECT_EQ(bf16.scalar_type() == torch::kBFloat16 || bf16.scalar_type() == torch::kFloat32, true);
  EXPECT_TRUE(torch::allclose(fp32.cpu(), bf16.to(torch::kFloat32).cpu(), 5e-2, 5e-2))
      << (fp32.cpu() - bf16.to(torch::kFloat32).cpu()).abs().max();
}

// The checkpoint of the LibTorch 1.13 build (tests/checkpoint/compat_test.cpp) opened on the
// device: the same probabilities as that build computed on the CPU.
TEST(DevicePredictor, CheckpointOfTheLibTorch113BuildOnTheDevice) {
  const auto device = test_device();
  const std::string dir = std::string(XMODAL_TEST_DATA) + "/checkpoint_1_13";
  at::globalContext().setAllowTF32CuBLAS(false);
  infer::PredictorOptions options;
  options.checkpoint = dir + "/checkpoint";
  options.top_k = 1000;
  options.overrides = {"run.threads=1", "run.device=" + device.str()};
  infer::Predictor predictor(options);
  std::ifstream inputs(dir + "/inputs.jsonl"), expected(dir + "/expected.jsonl");
  std::string in_line, want_line;
  int n = 0;
  while (std::getline(inputs, in_line) && std::getline(expected, want_line)) {
    const auto in = nlohmann::json::parse(in_line);
    const auto got = nlohmann::json::parse(testing::json_lines(predictor.predict(
        {{dir + "/" + in.at("image").get<std::string>(), in.at("text").get<std::string>()}}))[0]);
    ASSERT_FALSE(got.contains("error")) << got.dump();
    std::map<std::string, double> have;
    for (const auto& a : got.at("answers")) have[a.at("answer")] = a.at("probability");
    const auto want = nlohmann::json::parse(want_line);
    for (const auto& a : want.at("answers")) {
      EXPECT_NEAR(have.at(a.at("answer").get<std::string>()), a.at("probability").get<double>(),
                  1e-5)
          << "input " << n << " on " << device;
    }
    ++n;
  }
  EXPECT_EQ(n, 6);
}

}  // namespace
}  // namespace xmodal::models
