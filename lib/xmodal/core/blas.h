// The BLAS kernels matrix products run on: chosen for this CPU, checked, reported.
//
// Debian's OpenBLAS is a DYNAMIC_ARCH build: it holds kernels for many CPUs and picks one
// table when it loads, from the CPU model. 0.3.21 does not know newer models (Sapphire Rapids
// among them) and falls back to its SSE3 "Prescott" kernels: 4-6x slower products on a CPU
// with AVX-512. It exports the functions that make that choice (gotoblas_dynamic_quit/init),
// so xmodal re-runs it with the kernel this CPU's features call for, before any product runs,
// and checks the result against a plain reference (sgemm_check_cases) before keeping it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "xmodal/core/cpu.h"
#include "xmodal/core/gemm.h"

namespace xmodal {

/// A function of the process's loaded libraries by name (dlsym RTLD_DEFAULT), nullptr if none.
void* find_process_symbol(const char* name);
template <class Fn>
Fn find_symbol(const char* name) {
  return reinterpret_cast<Fn>(find_process_symbol(name));
}

struct BlasKernel {
  std::string core;             ///< OpenBLAS kernel in use ("SkylakeX"); "" if not DYNAMIC_ARCH
  std::string openblas_choice;  ///< what OpenBLAS picked by itself when it loaded
  std::string recommended;      ///< the kernel this CPU's features call for ("" none known)
  std::string how;              ///< how `core` was chosen, one phrase for `xmodal info`
  std::string rejected;         ///< a kernel xmodal tried and dropped: its sgemm check failure
  /// `core` lacks the AVX2 + FMA units this CPU has (e.g. Prescott): 2-3x slower products.
  bool slow = false;
  /// What a kernel below `recommended` that is not `slow` costs (AVX2 kernels on AVX-512),
  /// as measured; "" otherwise.
  std::string note;
  /// Every kernel tried failed the check: the first failure. Matrix products would be wrong.
  std::string broken;
};

/// The kernel OpenBLAS should run on this CPU: "SkylakeX" (AVX-512 F/CD/BW/DQ/VL),
/// "Cooperlake" (the same + AVX512-BF16), "Haswell" or "Zen" (AVX2 + FMA; by vendor), else "".
std::string recommended_openblas_core(const CpuInfo& cpu);

/// OpenBLAS's name of the kernel table in use ("Haswell"), "" when the BLAS is not OpenBLAS
/// or not a DYNAMIC_ARCH build.
std::string openblas_core();

/// Makes OpenBLAS switch to the named kernel table (case-insensitive), as OPENBLAS_CORETYPE
/// would have at load time. Only while no BLAS call runs (start-up, tests). Returns false when
/// the BLAS cannot switch or does not know the name; the environment is left as it was.
bool switch_openblas_core(const std::string& name);

/// One sgemm_ call checked against a double-precision reference.
struct GemmCase {
  char transa = 'N', transb = 'N';
  int m = 1, n = 1, k = 1;
  float alpha = 1.0f, beta = 0.0f;
  int pad = 0;  ///< extra rows in lda/ldb/ldc (must be left untouched in C)
};

/// The start-up check (thorough = false: ~0.3 M multiply-adds, every transposition, odd
/// sizes, alpha/beta, a full micro-kernel block) or the test suite's one (thorough = true:
/// tiny to 257, every alpha/beta form, the quickstart model's Linear and attention shapes).
std::vector<GemmCase> sgemm_check_cases(bool thorough);

/// Runs `sgemm` (default: the process's sgemm_, i.e. the routing of core/gemm.h) on each case and
/// compares every element with the reference to the worst-case rounding bound of any summation
/// order, (k + 4) u (|alpha| sum|a||b| + |beta c|), u = 2^-24; beta = 0 must ignore C (filled with
/// NaN), padding rows must be untouched. Returns "" or the first failure ("sgemm N/T 37x29x67
/// alpha=... : C[3,4] = ..., expected ...").
std::string check_sgemm(const std::vector<GemmCase>& cases, SgemmFn sgemm = nullptr);

/// Decides the kernel. The user's OPENBLAS_CORETYPE wins; XMODAL_BLAS_CORETYPE=openblas keeps
/// OpenBLAS's choice; otherwise a kernel below `recommended_openblas_core(cpu)` is replaced by
/// it. Then the kernel in use, whoever chose it, is verified by `check` ("" = correct): on a
/// failure (noted in `rejected`) OpenBLAS's own choice (after a switch), the recommended
/// kernel and Prescott are tried in turn, and `broken` is set when none passes.
BlasKernel choose_blas_kernel(const CpuInfo& cpu, const char* openblas_coretype_env,
                              const char* xmodal_blas_env,
                              const std::function<std::string()>& check);

/// The one-line warning about a `slow` kernel: what it costs, as measured.
std::string slow_kernel_warning(const BlasKernel& kernel);

/// The process's choice: the first call runs choose_blas_kernel() with this CPU, the
/// environment and the start-up sgemm check, and logs a warning when the kernel is slow or a
/// kernel was rejected; later calls return the same. Called by configure_threads(), i.e. before
/// any command computes (which refuses to go on when `broken`); cheap (< 1 ms).
const BlasKernel& select_blas_kernel();

}  // namespace xmodal
