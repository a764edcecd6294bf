#include "xmodal/core/blas.h"

#include <dlfcn.h>
#include <strings.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <limits>
#include <mutex>
#include <sstream>
#include <utility>

#include "xmodal/core/logging.h"

namespace xmodal {
namespace {

// 3: AVX-512, 2: AVX2 + FMA, 1: AVX, 0: SSE-only or unknown.
int core_rank(const std::string& core) {
  static const std::pair<const char*, int> ranks[] = {
      {"SkylakeX", 3},    {"Cooperlake", 3},  {"SapphireRapids", 3}, {"Haswell", 2},
      {"Zen", 2},         {"Sandybridge", 1}, {"Bulldozer", 1},      {"Piledriver", 1},
      {"Steamroller", 1}, {"Excavator", 1}};
  for (const auto& [name, rank] : ranks) {
    if (strcasecmp(core.c_str(), name) == 0) return rank;
  }
  return 0;
}

// Deterministic values in [-1, 1) (no global RNG state is touched).
struct Lcg {
  uint64_t state;
  float next() {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return static_cast<float>(static_cast<int32_t>(state >> 32)) / 2147483648.0f;
  }
};

std::string describe(const GemmCase& c) {
  std::ostringstream s;
  s << "sgemm " << c.transa << "/" << c.transb << " " << c.m << "x" << c.n << "x" << c.k
    << " alpha=" << c.alpha << " beta=" << c.beta;
  if (c.pad) s << " pad=" << c.pad;
  return s.str();
}

std::string check_one(SgemmFn sgemm, const GemmCase& c, uint64_t seed) {
  const bool ta = c.transa != 'N', tb = c.transb != 'N';
  const int a_rows = ta ? c.k : c.m, a_cols = ta ? c.m : c.k;
  const int b_rows = tb ? c.n : c.k, b_cols = tb ? c.k : c.n;
  const int lda = a_rows + c.pad, ldb = b_rows + c.pad, ldc = c.m + c.pad;
  Lcg rng{seed};
  std::vector<float> a(static_cast<size_t>(lda) * a_cols), b(static_cast<size_t>(ldb) * b_cols);
  for (auto& x : a) x = rng.next();
  for (auto& x : b) x = rng.next();
  const float sentinel = 12345.0f;
  std::vector<float> c0(static_cast<size_t>(ldc) * c.n);
  for (int j = 0; j < c.n; ++j) {
    for (int i = 0; i < ldc; ++i) {
      float& v = c0[static_cast<size_t>(j) * ldc + i];
      if (i >= c.m) {
        v = sentinel;
      } else {
        v = c.beta == 0.0f ? std::numeric_limits<float>::quiet_NaN() : rng.next();
      }
    }
  }
  std::vector<float> out = c0;
  sgemm(&c.transa, &c.transb, &c.m, &c.n, &c.k, &c.alpha, a.data(), &lda, b.data(), &ldb, &c.beta,
        out.data(), &ldc);

  // op(A) by rows and op(B) by columns, in double: the reference's inner loop runs contiguous.
  std::vector<double> ar(static_cast<size_t>(c.m) * c.k), bc(static_cast<size_t>(c.n) * c.k);
  for (int i = 0; i < c.m; ++i) {
    for (int p = 0; p < c.k; ++p) {
      ar[static_cast<size_t>(i) * c.k + p] =
          ta ? a[static_cast<size_t>(i) * lda + p] : a[static_cast<size_t>(p) * lda + i];
    }
  }
  for (int j = 0; j < c.n; ++j) {
    for (int p = 0; p < c.k; ++p) {
      bc[static_cast<size_t>(j) * c.k + p] =
          tb ? b[static_cast<size_t>(p) * ldb + j] : b[static_cast<size_t>(j) * ldb + p];
    }
  }
  const double u = std::ldexp(1.0, -24);
  for (int j = 0; j < c.n; ++j) {
    const double* y = bc.data() + static_cast<size_t>(j) * c.k;
    for (int i = 0; i < ldc; ++i) {
      const size_t at = static_cast<size_t>(j) * ldc + i;
      if (i >= c.m) {
        if (out[at] != sentinel) {
          return describe(c) + ": wrote C[" + std::to_string(i) + "," + std::to_string(j) +
                 "] outside the m rows of ldc";
        }
        continue;
      }
      const double* x = ar.data() + static_cast<size_t>(i) * c.k;
      double sum = 0.0, magnitude = 0.0;
      for (int p = 0; p < c.k; ++p) {
        sum += x[p] * y[p];
        magnitude += std::fabs(x[p] * y[p]);
      }
      double expected = c.alpha * sum;
      double bound = std::fabs(c.alpha) * magnitude;
      if (c.beta != 0.0f) {
        expected += static_cast<double>(c.beta) * c0[at];
        bound += std::fabs(static_cast<double>(c.beta) * c0[at]);
      }
      const double tolerance = (c.k + 4) * u * bound + 1e-30;
      const double got = out[at];
      if (!(std::fabs(got - expected) <= tolerance)) {
        std::ostringstream s;
        s << describe(c) << ": C[" << i << "," << j << "] = " << got << ", expected " << expected
          << " (tolerance " << tolerance << ")";
        return s.str();
      }
    }
  }
  return "";
}

}  // namespace

void* find_process_symbol(const char* name) { return dlsym(RTLD_DEFAULT, name); }

std::string recommended_openblas_core(const CpuInfo& cpu) {
  const bool amd = cpu.vendor == "AuthenticAMD" || cpu.vendor == "HygonGenuine";
  if (cpu.avx512()) return cpu.has("avx512_bf16") ? "Cooperlake" : "SkylakeX";
  if (cpu.avx2()) return amd ? "Zen" : "Haswell";
  return "";
}

std::string openblas_core() {
  // Only a DYNAMIC_ARCH build can switch, and only it exports the switch.
  if (!find_symbol<void (*)()>("gotoblas_dynamic_init")) return "";
  auto corename = find_symbol<char* (*)()>("openblas_get_corename");
  if (!corename) return "";
  const char* name = corename();
  return name ? std::string(name) : std::string();
}

bool switch_openblas_core(const std::string& name) {
  auto quit = find_symbol<void (*)()>("gotoblas_dynamic_quit");
  auto init = find_symbol<void (*)()>("gotoblas_dynamic_init");
  if (!quit || !init || name.empty()) return false;
  // A kernel for vector units this CPU (or its OS) lacks would die of SIGILL on first use.
  const CpuInfo& cpu = cpu_info();
  const int rank = core_rank(name);
  if ((rank == 3 && !cpu.avx512()) || (rank == 2 && !cpu.avx2()) ||
      (rank == 1 && !cpu.has("avx"))) {
    return false;
  }
  // gotoblas_dynamic_init() reads OPENBLAS_CORETYPE, as at load time; the variable is put
  // back afterwards so that child processes and `xmodal info` see the user's own setting.
  const char* previous = std::getenv("OPENBLAS_CORETYPE");
  const std::string saved = previous ? previous : "";
  setenv("OPENBLAS_CORETYPE", name.c_str(), 1);
  quit();
  init();
  if (previous) {
    setenv("OPENBLAS_CORETYPE", saved.c_str(), 1);
  } else {
    unsetenv("OPENBLAS_CORETYPE");
  }
  return strcasecmp(openblas_core().c_str(), name.c_str()) == 0;
}

std::vector<GemmCase> sgemm_check_cases(bool thorough) {
  std::vector<GemmCase> cases;
  const char transposes[4][2] = {{'N', 'N'}, {'N', 'T'}, {'T', 'N'}, {'T', 'T'}};
  if (!thorough) {
    for (const auto& t : transposes) cases.push_back({t[0], t[1], 37, 29, 67, 1.0f, 0.0f, 0});
    cases.push_back({'N', 'T', 13, 7, 5, -0.5f, 1.5f, 3});
    cases.push_back({'T', 'N', 64, 48, 64, 1.0f, 1.0f, 0});
    return cases;
  }
  const int sizes[][3] = {{1, 1, 1},      {1, 7, 3},    {5, 1, 9},    {7, 13, 5},
                          {16, 16, 16},   {17, 33, 65}, {31, 2, 129}, {63, 65, 127},
                          {129, 31, 257}, {48, 96, 1},  {2, 200, 33}};
  const float alpha_beta[][2] = {{1.0f, 0.0f}, {-0.5f, 1.0f}, {2.5f, -1.5f}, {0.0f, 0.5f}};
  for (const auto& t : transposes) {
    for (const auto& s : sizes) {
      for (const auto& ab : alpha_beta) {
        for (int pad : {0, 3}) cases.push_back({t[0], t[1], s[0], s[1], s[2], ab[0], ab[1], pad});
      }
    }
  }
  // The quickstart model (configs/quickstart.yaml, batch 64), as LibTorch calls the
  // column-major BLAS: a Linear y = x W^T over [rows, in] is sgemm T/N with m = out,
  // n = rows, k = in; its backward is N/N (dx) and N/T (dW). Attention per sample and head:
  // scores [L, 32] x [32, L] and context [L, L] x [L, 32].
  const int rows = 64 * 37;  // the vision encoder's 1 + 36 tokens
  const int linear[][2] = {{128, 384}, {128, 128}, {128, 512}, {512, 128}};
  for (const auto& io : linear) {
    cases.push_back({'T', 'N', io[1], rows, io[0], 1.0f, 0.0f, 0});  // forward
    cases.push_back({'N', 'N', io[0], rows, io[1], 1.0f, 0.0f, 0});  // input gradient
    cases.push_back({'N', 'T', io[0], io[1], rows, 1.0f, 1.0f, 0});  // weight gradient (+=)
  }
  for (int len : {37, 54}) {
    cases.push_back({'T', 'N', len, len, 32, 0.17677669f, 0.0f, 4 * 32 * 3 - len});
    cases.push_back({'N', 'N', 32, len, len, 1.0f, 0.0f, 0});
  }
  return cases;
}

std::string check_sgemm(const std::vector<GemmCase>& cases, SgemmFn sgemm) {
  if (!sgemm) sgemm = find_symbol<SgemmFn>("sgemm_");
  if (!sgemm) return "no sgemm_ in this process (no BLAS loaded)";
  uint64_t seed = 1;
  for (const auto& c : cases) {
    std::string problem = check_one(sgemm, c, seed++);
    if (!problem.empty()) return problem;
  }
  return "";
}

BlasKernel choose_blas_kernel(const CpuInfo& cpu, const char* openblas_coretype_env,
                              const char* xmodal_blas_env,
                              const std::function<std::string()>& check) {
  BlasKernel k;
  k.core = openblas_core();
  k.openblas_choice = k.core;
  k.recommended = recommended_openblas_core(cpu);
  const auto verify = [&] { return check ? check() : std::string(); };
  if (k.core.empty()) {
    k.how = "not a DYNAMIC_ARCH OpenBLAS: the library's own kernels";
    const std::string problem = verify();  // nothing to switch to
    if (problem.rfind("no sgemm_", 0) != 0) k.broken = problem;
    return k;
  }
  const std::string xmodal_env = xmodal_blas_env ? xmodal_blas_env : "";
  bool switched = false;
  if (openblas_coretype_env && *openblas_coretype_env) {
    k.how = std::string("set by OPENBLAS_CORETYPE=") + openblas_coretype_env;
  } else if (xmodal_env == "openblas") {
    k.how = "OpenBLAS's own choice (XMODAL_BLAS_CORETYPE=openblas)";
  } else if (k.recommended.empty() || core_rank(k.core) >= core_rank(k.recommended)) {
    k.how = "OpenBLAS's own choice";
  } else if (!switch_openblas_core(k.recommended)) {
    k.how = "OpenBLAS's own choice (switching to " + k.recommended + " failed)";
    k.rejected = k.recommended + ": OpenBLAS did not switch to it";
    switch_openblas_core(k.openblas_choice);
  } else {
    switched = true;
    k.core = openblas_core();
    k.how = "chosen by xmodal for " + std::string(cpu.avx512() ? "AVX-512" : "AVX2") +
            " (OpenBLAS picked " + k.openblas_choice +
            "; XMODAL_BLAS_CORETYPE=openblas keeps its choice)";
  }
  // The kernel in use is checked whoever chose it: some OpenBLAS builds compute wrong results
  // on some processors, which is why some machines set OPENBLAS_CORETYPE at all.
  std::string problem = verify();
  if (!problem.empty()) {
    const std::string failed = k.core;
    k.rejected = failed + " failed the sgemm check: " + problem;
    // another kernel this CPU runs: OpenBLAS's own choice (when xmodal switched), the one the
    // features call for, then the oldest and simplest (SSE3)
    std::vector<std::string> candidates;
    if (switched) candidates.push_back(k.openblas_choice);
    candidates.push_back(k.recommended);
    candidates.push_back("Prescott");
    for (const auto& candidate : candidates) {
      if (candidate.empty() || strcasecmp(candidate.c_str(), failed.c_str()) == 0) continue;
      if (!switch_openblas_core(candidate)) continue;
      problem = verify();
      if (problem.empty()) break;
    }
    k.core = openblas_core();
    if (problem.empty()) {
      k.how = "chosen by xmodal: " + failed + " (" + k.how + ") failed its check";
    } else {
      k.broken = k.rejected;
    }
  }
  const int rank = core_rank(k.core), best = core_rank(k.recommended);
  // Without AVX2 + FMA on a CPU that has them the BLAS's products run 2-3x slower; AVX2
  // kernels on an AVX-512 CPU cost little (docs/performance.md "CPU kernels",
  // scripts/bench/gemm.sh).
  k.slow = !k.recommended.empty() && rank < 2 && best >= 2;
  if (!k.slow && rank < best) {
    // oneDNN takes the large products only where a libdnnl is loaded (Debian's LibTorch 1.13;
    // the 2.x wheel keeps its oneDNN inside libtorch_cpu).
    k.note = std::string(
                 "AVX2 kernels on an AVX-512 CPU: 0.76-1.03x of the AVX-512 ones at the "
                 "model's shapes (scripts/bench/gemm.sh, Zen 4)") +
             (onednn_sgemm() ? ", and products of >= 2^23 multiply-adds run on oneDNN" : "");
  }
  return k;
}

std::string slow_kernel_warning(const BlasKernel& kernel) {
  return fmt::format(
      "BLAS kernel {} ({}) leaves this CPU's AVX2 + FMA unused: the BLAS's products run 2-3x "
      "slower (Prescott 57-80 against 122-211 GFLOP/s for Haswell at the model's shapes, "
      "scripts/bench/gemm.sh on Zen 4){}",
      kernel.core, kernel.how,
      onednn_sgemm() ? "; those of >= 2^23 multiply-adds run on oneDNN either way" : "");
}

const BlasKernel& select_blas_kernel() {
  static BlasKernel kernel;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* mode = std::getenv("XMODAL_BLAS_CORETYPE");
    kernel = choose_blas_kernel(cpu_info(), std::getenv("OPENBLAS_CORETYPE"), mode,
                                [] { return check_sgemm(sgemm_check_cases(false), blas_sgemm()); });
    if (mode && *mode && std::string(mode) != "auto" && std::string(mode) != "openblas") {
      log::warn(
          "[runtime] XMODAL_BLAS_CORETYPE={} ignored (expected auto or openblas; "
          "OPENBLAS_CORETYPE forces a kernel)",
          mode);
    }
    if (!kernel.broken.empty()) return;  // configure_threads() stops the command
    if (!kernel.rejected.empty()) {
      log::warn("[runtime] BLAS kernel rejected, running {}: {}", kernel.core, kernel.rejected);
    }
    if (kernel.slow) log::warn("[runtime] {}", slow_kernel_warning(kernel));
  });
  return kernel;
}

}  // namespace xmodal
