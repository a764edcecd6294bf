#include "xmodal/core/runtime.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <fstream>

#include "xmodal/core/blas.h"
#include "xmodal/core/strings.h"
#include "xmodal/core/version.h"

namespace xmodal {
namespace {

TEST(Runtime, ThreadsDefaultToAllCores) {
  EXPECT_EQ(configure_threads(0), available_cores());
  EXPECT_EQ(blas_info().threads, available_cores());
  EXPECT_EQ(configure_threads(1), 1);
  EXPECT_EQ(blas_info().threads, 1);
  EXPECT_EQ(at::get_num_threads(), 1);
  EXPECT_EQ(configure_threads(2, 2), 2);
  EXPECT_EQ(at::get_num_threads(), 2);
  EXPECT_EQ(configure_threads(0), available_cores());
  if (blas_info().name == "OpenBLAS (pthread)") {
    // its own pool: LibTorch's stays at 1 so the two do not fight
    EXPECT_EQ(at::get_num_threads(), 1);
  } else {
    // the OpenMP OpenBLAS runs on LibTorch's pool: one pool, every core
    EXPECT_EQ(at::get_num_threads(), available_cores());
  }
  EXPECT_THROW(configure_threads(-1), std::invalid_argument);
}

TEST(Runtime, LoadsTheOpenMPOpenBlasWhenInstalled) {
  // CMakeLists.txt puts its folder in the RPATH (scripts/setup.sh installs it)
  if (std::ifstream("/usr/lib/x86_64-linux-gnu/openblas-openmp/libblas.so.3").good()) {
    EXPECT_EQ(blas_info().name, "OpenBLAS (openmp)") << blas_info().library;
  } else {
    GTEST_SKIP() << "libopenblas0-openmp is not installed";
  }
}

// OMP_NUM_THREADS=100000 crashed libgomp; =0 stopped LibTorch with a stack trace.
TEST(Runtime, ThreadCountVariablesAreCheckedAgainstTheMachine) {
  std::string to = "unchanged";
  EXPECT_EQ(check_thread_count_variable("OMP_NUM_THREADS", "2", 2, &to), "");
  EXPECT_EQ(check_thread_count_variable("OMP_NUM_THREADS", "8,2", 2, &to), "");
  EXPECT_EQ(to, "unchanged");
  EXPECT_EQ(check_thread_count_variable("OMP_NUM_THREADS", "100000", 2, &to),
            "OMP_NUM_THREADS=100000 asks for more threads than 2 cores can run: using 8");
  EXPECT_EQ(to, "8");
  EXPECT_NE(check_thread_count_variable("OMP_NUM_THREADS", "4,9", 2, &to), "");
  EXPECT_EQ(to, "8");
  EXPECT_NE(check_thread_count_variable("OMP_NUM_THREADS", "99999999999999999999999", 2, &to), "");
  for (const char* bad : {"0", "", "-3", "abc", "4,", "2,0", " 3", "1e9"}) {
    to = "unchanged";
    EXPECT_EQ(check_thread_count_variable("MKL_NUM_THREADS", bad, 2, &to),
              std::string("MKL_NUM_THREADS=") + bad + " is not a positive thread count: ignored");
    EXPECT_EQ(to, "") << bad;
  }
}

TEST(Runtime, DeviceSpecs) {
  EXPECT_EQ(resolve_device("cpu"), torch::Device(torch::kCPU));
  EXPECT_EQ(check_device_spec("cuda:3"), "");
  EXPECT_EQ(check_device_spec("gpu"), "unknown device 'gpu' (expected auto, cpu, cuda or cuda:N)");
  EXPECT_THROW(resolve_device("cuda:x"), std::invalid_argument);
  if (!torch::cuda::is_available()) {
    EXPECT_EQ(resolve_device("auto"), torch::Device(torch::kCPU));
    EXPECT_THROW(resolve_device("cuda"), std::runtime_error);
  }
}

TEST(Runtime, SummaryNamesVersionThreadsBlasDevices) {
  configure_threads(0);
  const auto lines = runtime_summary();
  ASSERT_GE(lines.size(), 5u);
  EXPECT_NE(lines[0].find("LibTorch " TORCH_VERSION), std::string::npos) << lines[0];
  // The LibTorch line: its oneDNN, its CPU capability and whether CUDA is compiled in.
  EXPECT_EQ(lines[1].rfind(std::string("LibTorch: ") + TORCH_VERSION + ", oneDNN v", 0), 0u)
      << lines[1];
  EXPECT_NE(lines[1].find(", CPU capability "), std::string::npos) << lines[1];
  EXPECT_NE(lines[1].find(built_with_cuda() ? "CUDA compiled in" : "CUDA not compiled in"),
            std::string::npos)
      << lines[1];
  EXPECT_EQ(lines[2].rfind("CPU: ", 0), 0u) << lines[2];
  EXPECT_NE(lines[3].find("compute threads: " + std::to_string(available_cores())),
            std::string::npos)
      << lines[3];
  EXPECT_EQ(lines[4].rfind("BLAS: ", 0), 0u);
  if (!openblas_core().empty()) {
    bool kernel_line = false;
    for (const auto& line : lines)
      kernel_line |= line.rfind("BLAS kernel: " + openblas_core(), 0) == 0;
    EXPECT_TRUE(kernel_line) << join(lines, "\n");
  }
}

// setup.sh installs libopenblas0-pthread: the BLAS actually loaded must be OpenBLAS. This is
// the check that catches a machine silently running the ~30x slower reference BLAS.
TEST(Runtime, MatrixProductsRunOnOpenBlas) {
  torch::mm(torch::ones({64, 64}), torch::ones({64, 64}));  // make sure BLAS is loaded
  const BlasInfo blas = blas_info();
  EXPECT_TRUE(blas.optimized) << blas.name << " [" << blas.library << "]";
  EXPECT_NE(blas.name.find("OpenBLAS"), std::string::npos) << blas.name;
}

TEST(Runtime, MatmulRateIsPositive) { EXPECT_GT(measure_matmul_gflops(64, 0.0), 0.0); }

}  // namespace
}  // namespace xmodal
