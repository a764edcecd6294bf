// Which library runs each fp32 matrix product (sgemm_), chosen per shape class.
//
// LibTorch multiplies fp32 matrices through the Fortran BLAS symbol sgemm_ (Linear layers,
// matmul, bmm), and models/attention.cpp calls it per (sample, head). Measured at the
// quickstart model's shapes (build/xmodal_bench_gemm, AMD EPYC Zen 4, 2 threads): oneDNN's
// sgemm, which Debian's LibTorch already links (libdnnl.so.2), runs the Linear layers'
// products over a batch at 208-233 GFLOP/s, ~98% of the cores' peak, against 178-210 for
// OpenBLAS's best kernel table (the backward products gain most); it detects AVX-512 itself,
// so it also runs at full speed where OpenBLAS does not know the CPU. On small products
// (a batch of 1, the pooled last fusion layer, the attention's per-head products) OpenBLAS's
// kernels are faster (up to 1.6x). xmodal therefore defines sgemm_ itself: the executable's
// definition takes precedence over libblas.so.3's for every caller in the process (ELF symbol
// interposition), and routes
//   - a product issued inside a parallel region (one small product per thread) to the BLAS;
//   - any other product of at least kMinOneDnnWork multiply-adds to oneDNN's dnnl_sgemm;
//   - the rest to the BLAS.
// The oneDNN route is checked against a double reference (core/blas.h check_sgemm) before its
// first use and dropped, with a warning, if it fails. LibTorch 2.x links oneDNN statically and
// exports no dnnl_sgemm; there the route is its at::native::mkldnn_matmul on strided views of
// the operands (measured on 2.11, Zen 4: 204-225 GFLOP/s against OpenBLAS's 171-198 at these
// shapes; quickstart training 1.15x, scripts/bench/trainer_ab.sh with XMODAL_GEMM=blas).
// XMODAL_GEMM=blas sends everything to the BLAS (for comparisons); XMODAL_GEMM=auto (the default)
// routes as above.
#pragma once

#include <cstdint>
#include <string>

namespace xmodal {

using SgemmFn = void (*)(const char* transa, const char* transb, const int* m, const int* n,
                         const int* k, const float* alpha, const float* a, const int* lda,
                         const float* b, const int* ldb, const float* beta, float* c,
                         const int* ldc);

/// Below this many multiply-adds a product stays on the BLAS (call overhead dominates).
constexpr double kMinOneDnnWork = 8388608.0;  // 2^23: above the 4.2 M of the pooled layer

/// The BLAS library's own sgemm_ (libblas.so.3: OpenBLAS), bypassing the routing; nullptr if
/// none is loaded.
SgemmFn blas_sgemm();

/// oneDNN's product behind the column-major sgemm_ interface (dnnl_sgemm where libdnnl exports
/// it, LibTorch's mkldnn_matmul otherwise); nullptr if neither is in this process.
SgemmFn onednn_sgemm();

/// What the routing does in this process, one phrase for `xmodal info` ("oneDNN 2.6.3 for
/// products of >= 8388608 multiply-adds outside parallel loops, the BLAS for the rest ...").
std::string gemm_routing();

/// Products the process's sgemm_ has run on each library so far.
struct GemmCounts {
  int64_t onednn = 0;
  int64_t blas = 0;
};
GemmCounts gemm_counts();

/// True when products are routed to oneDNN (XMODAL_GEMM is not "blas", oneDNN is loaded and
/// its check has not failed). Runs the check on first call.
bool gemm_uses_onednn();

}  // namespace xmodal
