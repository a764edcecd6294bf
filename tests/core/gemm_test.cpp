#include "xmodal/core/gemm.h"

#include <dlfcn.h>
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdio>

#include "xmodal/core/blas.h"
#include "xmodal_test_paths.h"

namespace xmodal {
namespace {

// This executable's sgemm_ is xmodal's routing, not libblas.so.3's: LibTorch's calls land here.
TEST(Gemm, TheProcessSgemmIsTheRouting) {
  ASSERT_NE(blas_sgemm(), nullptr);
  const auto process = reinterpret_cast<SgemmFn>(dlsym(RTLD_DEFAULT, "sgemm_"));
  EXPECT_NE(process, blas_sgemm());
  const GemmCounts before = gemm_counts();
  torch::NoGradGuard no_grad;
  const auto big = torch::mm(torch::randn({256, 256}), torch::randn({256, 256}));  // 16.8 M
  const auto small = torch::mm(torch::randn({16, 16}), torch::randn({16, 16}));
  const GemmCounts after = gemm_counts();
  if (gemm_uses_onednn()) {
    EXPECT_EQ(after.onednn, before.onednn + 1);
    EXPECT_EQ(after.blas, before.blas + 1);
  } else {
    EXPECT_EQ(after.blas, before.blas + 2);
  }
}

TEST(Gemm, OneDnnRouteMatchesTheReference) {
  if (!onednn_sgemm()) GTEST_SKIP() << "oneDNN is not loaded";
  EXPECT_EQ(check_sgemm(sgemm_check_cases(true), onednn_sgemm()), "");
  EXPECT_TRUE(gemm_uses_onednn()) << gemm_routing();
  EXPECT_NE(gemm_routing().find("oneDNN"), std::string::npos) << gemm_routing();
}

// Bit-identical resume needs the same product twice to give the same bits.
TEST(Gemm, RoutedProductsAreDeterministic) {
  torch::manual_seed(5);
  const auto x = torch::randn({64 * 54, 128});
  const auto w = torch::randn({512, 128});
  const auto y1 = torch::nn::functional::linear(x, w);
  const auto y2 = torch::nn::functional::linear(x, w);
  EXPECT_TRUE(torch::equal(y1, y2));
}

TEST(Gemm, XmodalGemmBlasSendsEverythingToTheBlas) {
  std::string out;
  FILE* pipe =
      popen((std::string("XMODAL_GEMM=blas ") + XMODAL_BINARY + " info 2>&1").c_str(), "r");
  char buffer[512];
  while (pipe && fgets(buffer, sizeof buffer, pipe)) out += buffer;
  if (pipe) pclose(pipe);
  EXPECT_NE(out.find("matrix products: the BLAS for every product (XMODAL_GEMM=blas)"),
            std::string::npos)
      << out;
}

}  // namespace
}  // namespace xmodal
