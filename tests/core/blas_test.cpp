#include "xmodal/core/blas.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <strings.h>

#include <cstdio>

#include "xmodal_test_paths.h"

namespace xmodal {
namespace {

CpuInfo cpu_with(std::string vendor, std::vector<std::string> features) {
  CpuInfo cpu;
  cpu.vendor = std::move(vendor);
  cpu.features = std::move(features);
  return cpu;
}

TEST(Blas, RecommendedKernelFollowsTheFeatures) {
  const std::vector<std::string> avx2 = {"sse2", "avx", "fma", "avx2"};
  std::vector<std::string> avx512 = avx2;
  for (const char* f : {"avx512f", "avx512cd", "avx512bw", "avx512dq", "avx512vl"}) {
    avx512.push_back(f);
  }
  std::vector<std::string> bf16 = avx512;
  bf16.push_back("avx512_bf16");
  EXPECT_EQ(recommended_openblas_core(cpu_with("GenuineIntel", avx2)), "Haswell");
  EXPECT_EQ(recommended_openblas_core(cpu_with("AuthenticAMD", avx2)), "Zen");
  EXPECT_EQ(recommended_openblas_core(cpu_with("GenuineIntel", avx512)), "SkylakeX");
  EXPECT_EQ(recommended_openblas_core(cpu_with("AuthenticAMD", bf16)), "Cooperlake");
  // Knights Landing style AVX-512 (no BW/VL): the AVX2 kernels
  EXPECT_EQ(recommended_openblas_core(cpu_with("GenuineIntel", {"avx", "fma", "avx2", "avx512f"})),
            "Haswell");
  EXPECT_EQ(recommended_openblas_core(cpu_with("GenuineIntel", {"sse2", "avx"})), "");
  EXPECT_EQ(recommended_openblas_core(cpu_with("GenuineIntel", {"avx2"})), "");  // no FMA
}

// The kernel this process runs (tests/support/blas_environment.cpp selects it as the binary
// does), checked exhaustively: every transposition, tiny and odd sizes, alpha/beta, padding,
// and the shapes the quickstart model multiplies.
TEST(Blas, SgemmInUseMatchesTheReference) {
  const auto cases = sgemm_check_cases(true);
  EXPECT_GT(cases.size(), 300u);
  EXPECT_EQ(check_sgemm(cases), "") << "kernel " << openblas_core();
  EXPECT_EQ(check_sgemm(sgemm_check_cases(false)), "");
}

// Every kernel table this CPU can execute computes correctly here: a forced one is only kept
// after such a check, and this shows which ones xmodal could fall back to.
TEST(Blas, EveryKernelThisCpuRunsPassesTheCheck) {
  const std::string in_use = select_blas_kernel().core;
  if (in_use.empty()) GTEST_SKIP() << "not a DYNAMIC_ARCH OpenBLAS";
  const CpuInfo& cpu = cpu_info();
  std::vector<std::string> cores = {"Prescott", "Nehalem"};  // SSE3, SSE4.2
  if (cpu.has("avx")) cores.push_back("Sandybridge");
  if (cpu.avx2()) cores.insert(cores.end(), {"Haswell", "Zen"});
  if (cpu.avx512()) cores.push_back("SkylakeX");
  if (cpu.avx512() && cpu.has("avx512_bf16")) cores.push_back("Cooperlake");
  std::vector<GemmCase> cases;  // the thorough set without the large model shapes (~1 s each)
  for (const auto& c : sgemm_check_cases(true)) {
    if (static_cast<double>(c.m) * c.n * c.k < 2e6) cases.push_back(c);
  }
  for (const auto& core : cores) {
    ASSERT_TRUE(switch_openblas_core(core)) << core;
    EXPECT_EQ(check_sgemm(cases), "") << "kernel " << core;
  }
  ASSERT_TRUE(switch_openblas_core(in_use));
  EXPECT_EQ(openblas_core(), in_use);
  if (!cpu.avx512()) {
    EXPECT_FALSE(switch_openblas_core("SkylakeX"));  // refused, not SIGILL
  }
  EXPECT_EQ(openblas_core(), in_use);
}

// What xmodal does on a CPU OpenBLAS does not know, simulated by switching to its fallback
// first: the recommended kernel replaces it and is checked, and a failed check puts the
// fallback back and says why.
TEST(Blas, AFallbackKernelIsReplacedCheckedOrPutBack) {
  const std::string in_use = select_blas_kernel().core;
  const CpuInfo& cpu = cpu_info();
  const std::string best = recommended_openblas_core(cpu);
  if (in_use.empty() || best.empty()) GTEST_SKIP() << "no DYNAMIC_ARCH OpenBLAS or no AVX2";

  ASSERT_TRUE(switch_openblas_core("Prescott"));
  int checks = 0;
  const auto check = [&] {
    ++checks;
    return check_sgemm(sgemm_check_cases(false));
  };
  BlasKernel k = choose_blas_kernel(cpu, nullptr, nullptr, check);
  EXPECT_EQ(k.openblas_choice, "Prescott");
  EXPECT_EQ(k.core, best);
  EXPECT_EQ(openblas_core(), best);
  EXPECT_EQ(checks, 1);
  EXPECT_FALSE(k.slow);
  EXPECT_EQ(k.rejected, "");
  EXPECT_NE(k.how.find("chosen by xmodal"), std::string::npos) << k.how;

  // the recommended kernel fails its check: OpenBLAS's choice is put back, checked and kept
  ASSERT_TRUE(switch_openblas_core("Prescott"));
  checks = 0;
  const auto fails_on_best = [&] {
    ++checks;
    return strcasecmp(openblas_core().c_str(), best.c_str()) == 0 ? std::string("C[0,0] = 7")
                                                                  : std::string();
  };
  k = choose_blas_kernel(cpu, nullptr, nullptr, fails_on_best);
  EXPECT_EQ(k.core, "Prescott");
  EXPECT_EQ(openblas_core(), "Prescott");
  EXPECT_EQ(checks, 2);
  EXPECT_TRUE(k.slow);
  EXPECT_EQ(k.broken, "");
  EXPECT_EQ(k.rejected, best + " failed the sgemm check: C[0,0] = 7");

  // the user's OPENBLAS_CORETYPE wins, XMODAL_BLAS_CORETYPE=openblas keeps OpenBLAS's choice;
  // both are checked all the same
  checks = 0;
  k = choose_blas_kernel(cpu, "Prescott", nullptr, check);
  EXPECT_EQ(k.core, "Prescott");
  EXPECT_EQ(k.how, "set by OPENBLAS_CORETYPE=Prescott");
  EXPECT_TRUE(k.slow);
  k = choose_blas_kernel(cpu, nullptr, "openblas", check);
  EXPECT_EQ(k.core, "Prescott");
  EXPECT_EQ(checks, 2);

  // a kernel the user set that computes wrong results is replaced by one that passes
  const auto fails_on_prescott = [&] {
    return openblas_core() == "Prescott" ? std::string("C[1,2] = nan") : std::string();
  };
  k = choose_blas_kernel(cpu, "Prescott", nullptr, fails_on_prescott);
  EXPECT_EQ(k.core, best);
  EXPECT_EQ(k.rejected, "Prescott failed the sgemm check: C[1,2] = nan");
  EXPECT_EQ(k.how,
            "chosen by xmodal: Prescott (set by OPENBLAS_CORETYPE=Prescott) failed its check");
  EXPECT_FALSE(k.slow);
  EXPECT_EQ(k.broken, "");

  // nothing passes: broken, and the commands refuse to compute (configure_threads)
  k = choose_blas_kernel(cpu, nullptr, nullptr, [] { return std::string("C[0,0] = 7"); });
  EXPECT_NE(k.broken, "");

  // AVX2 kernels on an AVX-512 CPU are not a "slow" fallback; the note says what they cost
  if (cpu.avx512()) {
    ASSERT_TRUE(switch_openblas_core("Haswell"));
    k = choose_blas_kernel(cpu, "Haswell", nullptr, check);
    EXPECT_EQ(k.core, "Haswell");
    EXPECT_FALSE(k.slow);
    EXPECT_NE(k.note.find("AVX2 kernels on an AVX-512 CPU"), std::string::npos) << k.note;
  }

  ASSERT_TRUE(switch_openblas_core(in_use));
}

// LibTorch's own products (mm, addmm, bmm, linear) run on that kernel: compared with the
// same products in double precision.
TEST(Blas, LibTorchProductsAgreeWithDoublePrecision) {
  torch::manual_seed(3);
  const auto x = torch::randn({64 * 37, 128});
  const auto w = torch::randn({384, 128});
  const auto b = torch::randn({384});
  const auto y = torch::nn::functional::linear(x, w, b);
  const auto y64 = torch::nn::functional::linear(x.to(torch::kDouble), w.to(torch::kDouble),
                                                 b.to(torch::kDouble));
  EXPECT_LT((y.to(torch::kDouble) - y64).abs().max().item<double>(), 1e-3);
  const auto q = torch::randn({256, 54, 32});
  const auto k = torch::randn({256, 54, 32});
  const auto s = torch::bmm(q, k.transpose(1, 2));
  const auto s64 = torch::bmm(q.to(torch::kDouble), k.to(torch::kDouble).transpose(1, 2));
  EXPECT_LT((s.to(torch::kDouble) - s64).abs().max().item<double>(), 1e-3);
  const auto c = torch::randn({37, 29});
  const auto a = torch::randn({67, 37}).t();
  const auto m = torch::addmm(c, a, torch::randn({67, 29}), 0.5, -2.0);
  EXPECT_TRUE(torch::isfinite(m).all().item<bool>());
}

// The binary reports the CPU and the kernel, and warns about a slow one it was told to use.
// Each run is given the environment it is asserted about (the machine's own may set
// OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE), and compared with what the binary says of itself.
TEST(Blas, InfoNamesTheKernelAndWarnsAboutAFallback) {
  if (select_blas_kernel().core.empty()) GTEST_SKIP() << "not a DYNAMIC_ARCH OpenBLAS";
  const auto run = [](const std::string& env) {
    std::string out;
    const std::string command =
        "env -u OPENBLAS_CORETYPE -u XMODAL_BLAS_CORETYPE -u "
        "OPENBLAS_L2_SIZE " +
        env + " " + XMODAL_BINARY + " info 2>&1";
    FILE* pipe = popen(command.c_str(), "r");
    char buffer[512];
    while (pipe && fgets(buffer, sizeof buffer, pipe)) out += buffer;
    if (pipe) pclose(pipe);
    return out;
  };
  const CpuInfo& cpu = cpu_info();
  const std::string best = recommended_openblas_core(cpu);
  const std::string own = run("");
  EXPECT_NE(own.find("CPU: "), std::string::npos) << own;
  EXPECT_NE(own.find("BLAS kernel: "), std::string::npos) << own;
  if (best.empty()) return;
  // unset, xmodal keeps OpenBLAS's choice or moves up to the recommended kernel: never slow
  EXPECT_EQ(own.find("WARNING"), std::string::npos) << own;
  const std::string forced = run("OPENBLAS_CORETYPE=Prescott");
  EXPECT_NE(forced.find("BLAS kernel: Prescott (set by OPENBLAS_CORETYPE=Prescott)"),
            std::string::npos)
      << forced;
  EXPECT_NE(forced.find("WARNING: BLAS kernel Prescott"), std::string::npos) << forced;
  EXPECT_NE(forced.find("2-3x slower"), std::string::npos) << forced;
  // AVX2 kernels on an AVX-512 CPU (this machine's environment may set Haswell): no warning,
  // and what they cost as measured
  const std::string avx2 = run("OPENBLAS_CORETYPE=Haswell");
  EXPECT_NE(avx2.find("BLAS kernel: Haswell (set by OPENBLAS_CORETYPE=Haswell)"), std::string::npos)
      << avx2;
  EXPECT_EQ(avx2.find("WARNING"), std::string::npos) << avx2;
  EXPECT_EQ(avx2.find("several times slower"), std::string::npos) << avx2;
  if (cpu.avx512()) {
    EXPECT_NE(avx2.find("AVX2 kernels on an AVX-512 CPU"), std::string::npos) << avx2;
  }
}

}  // namespace
}  // namespace xmodal
