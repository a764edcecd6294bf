// models::Linear: the float path is torch::nn::Linear's bit for bit; the int8 path (the
// quantized engine's dynamic product, per-row weight scales) stays within the rounding bound of its
// two quantizations, keeps shapes, passes gradients through and round-trips through its stored
// form.
#include "xmodal/models/linear.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "xmodal/core/cpu.h"
#include "xmodal/models/import.h"

#include <algorithm>
#include <cstdlib>
#include <string>

namespace xmodal::models {
namespace {

// The stated tolerance of an int8 product against the float product with the same float
// weight, per output: the weight's rounding (half a step of its row, scale / 2, times sum |x|),
// the input's (half a step of 7 bits over [min(x, 0), max(x, 0)], one range for the whole input
// as dynamic quantization takes it, times sum |w|) and their product, plus 1e-5.
torch::Tensor int8_bound(const torch::Tensor& x, const torch::Tensor& w) {
  const auto half_w = (w.abs().amax(1) / 127.0 * 0.5).unsqueeze(0);  // [1, out]
  const double half_x =
      0.5 * (std::max(x.max().item<double>(), 0.0) - std::min(x.min().item<double>(), 0.0)) / 127.0;
  const auto sum_x = x.abs().sum(1, true);         // [rows, 1]
  const auto sum_w = w.abs().sum(1).unsqueeze(0);  // [1, out]
  return sum_x * half_w + sum_w * half_x + half_w * (half_x * w.size(1)) + 1e-5;
}

TEST(Linear, FloatPathIsTorchLinearBitForBit) {
  torch::manual_seed(1);
  torch::nn::Linear reference(24, 10);
  torch::manual_seed(1);
  Linear ours(24, 10);  // the same initialisation from the same generator
  EXPECT_TRUE(torch::equal(ours->weight, reference->weight));
  EXPECT_TRUE(torch::equal(ours->bias, reference->bias));
  const auto x = torch::randn({3, 5, 24});
  EXPECT_TRUE(torch::equal(ours(x), reference(x)));
  EXPECT_FALSE(ours->is_int8());
}

TEST(Linear, Int8IsWithinTheStatedBoundOfTheFloatProductAtTheModelsShapes) {
  torch::manual_seed(2);
  for (const auto& [rows, in, out] : std::vector<std::tuple<int64_t, int64_t, int64_t>>{
           {64, 128, 384}, {54, 128, 512}, {7, 512, 128}, {1, 128, 256}, {33, 13, 5}}) {
    Linear layer(in, out);
    torch::NoGradGuard no_grad;
    layer->weight.normal_(0, 0.05);
    layer->bias.normal_(0, 0.1);
    const auto w = layer->weight.clone();
    const auto x = torch::randn({rows, in}) * 1.5 + 0.3;
    const auto y32 = layer(x);
    layer->quantize_int8();
    ASSERT_TRUE(layer->is_int8());
    EXPECT_EQ(layer->weight.numel(), 0) << "the float weight is released";
    const auto y8 = layer(x);
    ASSERT_EQ(y8.sizes(), y32.sizes());
    const auto err = (y8 - y32).abs();
    EXPECT_TRUE((err <= int8_bound(x, w)).all().item<bool>())
        << rows << "x" << in << "->" << out << ": max error " << err.max().item<double>();
    // and it is a good approximation, not just a bounded one: relative RMS error < 2%
    const double rel = ((y8 - y32).pow(2).mean() / y32.pow(2).mean()).sqrt().item<double>();
    EXPECT_LT(rel, 0.02) << rows << "x" << in << "->" << out;
    // the int8 weight times its scales is the float weight to half a step per row
    const auto deq = layer->dequantized_weight();
    EXPECT_TRUE(((deq - w).abs() <= (w.abs().amax(1, true) / 254.0 + 1e-7)).all().item<bool>());
  }
}

// The engine: X86 (FBGEMM) where LibTorch has it; inputs in 8 bits only where VNNI adds the
// u8 x s8 products in 32 bits (elsewhere they saturate in 16).
TEST(Linear, Int8EngineReadsEightBitInputsOnlyWithVnni) {
  check_int8_engine();
  const auto summary = int8_engine_summary();
  const auto& cpu = cpu_info();
  const bool vnni = cpu.has("avx512_vnni") || cpu.has("avx_vnni") || cpu.has("amx_int8");
  EXPECT_NE(summary.find(vnni ? "8-bit inputs (VNNI)" : "7-bit inputs (no VNNI)"),
            std::string::npos)
      << summary;
  const auto& engines = at::globalContext().supportedQEngines();
  if (!std::getenv("XMODAL_INT8_ENGINE") &&
      std::find(engines.begin(), engines.end(), at::QEngine::X86) != engines.end()) {
    EXPECT_EQ(summary.rfind("X86 engine", 0), 0u) << summary;
    EXPECT_EQ(at::globalContext().qEngine(), at::QEngine::X86);
  }
}

TEST(Linear, Int8KeepsLeadingDimensionsEmptyInputsAndZeroRows) {
  Linear layer(16, 8);
  {
    torch::NoGradGuard no_grad;
    layer->weight[3].zero_();  // an all-zero row gets scale 1, not a division by zero
  }
  layer->quantize_int8();
  torch::NoGradGuard no_grad;
  const auto y = layer(torch::randn({2, 3, 16}));
  EXPECT_EQ(y.sizes(), torch::IntArrayRef({2, 3, 8}));
  EXPECT_TRUE(torch::isfinite(y).all().item<bool>());
  EXPECT_EQ(layer(torch::zeros({0, 16})).sizes(), torch::IntArrayRef({0, 8}));
  EXPECT_THROW(layer(torch::randn({2, 15})), c10::Error);
}

TEST(Linear, Int8PassesTheGradientOfItsDequantizedWeight) {
  torch::manual_seed(3);
  Linear layer(12, 6);
  layer->quantize_int8();
  const auto x = torch::randn({4, 12}, torch::requires_grad());
  const auto g = torch::randn({4, 6});
  layer(x).backward(g);
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(torch::allclose(x.grad(), g.matmul(layer->dequantized_weight()), 1e-5, 1e-6));
}

TEST(Linear, StoredInt8FormLoadsIntoAFreshModuleWithTheSameOutputs) {
  torch::manual_seed(4);
  torch::nn::Sequential net(Linear(10, 20), torch::nn::GELU(), Linear(20, 3));
  EXPECT_EQ(quantize_int8(*net), 2);
  EXPECT_TRUE(has_int8(*net));
  auto stored = int8_state_tensors(*net);
  EXPECT_EQ(stored.at("0.weight").scalar_type(), torch::kInt8);
  EXPECT_EQ(stored.at("0.weight").sizes(), torch::IntArrayRef({20, 10}));
  EXPECT_EQ(stored.at(std::string("2") + kInt8ScaleSuffix).sizes(), torch::IntArrayRef({3}));

  torch::manual_seed(5);  // other random weights, all replaced
  torch::nn::Sequential fresh(Linear(10, 20), torch::nn::GELU(), Linear(20, 3));
  load_int8_layers(*fresh, stored, "<test>");
  EXPECT_EQ(stored.count(std::string("0") + kInt8ScaleSuffix), 0u);
  load_state(*fresh, stored, /*strict=*/true, "<test>");
  torch::NoGradGuard no_grad;
  const auto x = torch::randn({5, 10});
  EXPECT_TRUE(torch::equal(fresh->forward(x), net->forward(x)));
}

TEST(Linear, BadStoredInt8FormsAreRefusedByName) {
  Linear layer(4, 3);
  EXPECT_THROW(layer->load_int8(torch::zeros({3, 4}), torch::ones({3})), std::runtime_error);
  EXPECT_THROW(layer->load_int8(torch::zeros({3, 5}, torch::kInt8), torch::ones({3})),
               std::runtime_error);
  EXPECT_THROW(layer->load_int8(torch::zeros({3, 4}, torch::kInt8), torch::ones({2})),
               std::runtime_error);
  EXPECT_THROW(layer->load_int8(torch::zeros({3, 4}, torch::kInt8), -torch::ones({3})),
               std::runtime_error);
  torch::nn::Sequential net(Linear(4, 3));
  std::map<std::string, torch::Tensor> stored = {{"0.weight_scale", torch::ones({3})},
                                                 {"0.bias", torch::zeros({3})}};
  try {
    load_int8_layers(*net, stored, "m.safetensors");
    FAIL() << "a scale without its weight loaded";
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("m.safetensors: 0.weight_scale without 0.weight"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace xmodal::models
