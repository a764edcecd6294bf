#include "xmodal/core/gemm.h"

#include <dlfcn.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <mutex>

#include "xmodal/core/blas.h"
#include "xmodal/core/logging.h"

namespace xmodal {
namespace {

using DnnlSgemm = int (*)(char transa, char transb, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                          float* c, int64_t ldc);
using DnnlVersion = const struct DnnlVersionInfo* (*)();
struct DnnlVersionInfo {
  int major, minor, patch;
  const char* hash;
  unsigned cpu_runtime, gpu_runtime;
};

DnnlSgemm dnnl_sgemm_fn() {
  static const DnnlSgemm fn = find_symbol<DnnlSgemm>("dnnl_sgemm");
  return fn;
}

// LibTorch 2.x links oneDNN statically and exports no dnnl_sgemm, but it exports its own
// oneDNN matrix product, at::native::mkldnn_matmul(mat1, mat2, result, beta, alpha), which
// takes strided tensors (no header ships it; the symbol is looked up by its mangled name).
using MkldnnMatmul = void (*)(const at::Tensor&, const at::Tensor&, const at::Tensor&, float,
                              float);

MkldnnMatmul mkldnn_matmul_fn() {
  static const MkldnnMatmul fn =
      find_symbol<MkldnnMatmul>("_ZN2at6native13mkldnn_matmulERKNS_6TensorES3_S3_ff");
  return fn;
}

// A column-major operand op(X) (rows x cols, leading dimension ld) seen as the row-major
// tensor op(X)^T [cols, rows]: untransposed X is (rows, cols) column-major, which row-major
// reads as strides {ld, 1}; transposed X is stored (cols, rows), strides {1, ld}.
at::Tensor row_major_transpose(const float* x, char trans, int rows, int cols, int ld) {
  const bool t = trans == 'T' || trans == 't' || trans == 'C' || trans == 'c';
  const std::vector<int64_t> strides =
      t ? std::vector<int64_t>{1, ld} : std::vector<int64_t>{ld, 1};
  return at::from_blob(const_cast<float*>(x), {cols, rows}, strides, at::kFloat);
}

// C^T = op(B)^T op(A)^T through mkldnn_matmul; false if it refused the operands.
bool mkldnn_column_major(char transa, char transb, int m, int n, int k, float alpha, const float* a,
                         int lda, const float* b, int ldb, float beta, float* c, int ldc) {
  // It computes alpha = 0 as if it were 1 with the sum post-op; degenerate shapes too are
  // the BLAS's (neither occurs at the sizes routed here outside the check).
  if (alpha == 0.0f || m == 0 || n == 0 || k == 0) return false;
  try {
    const at::Tensor mat1 = row_major_transpose(b, transb, k, n, ldb);  // [n, k]
    const at::Tensor mat2 = row_major_transpose(a, transa, m, k, lda);  // [k, m]
    const at::Tensor result = at::from_blob(c, {n, m}, {ldc, 1}, at::kFloat);
    mkldnn_matmul_fn()(mat1, mat2, result, beta, alpha);
    return true;
  } catch (const std::exception&) {
    return false;
  }
}

// The column-major call C = op(A) op(B) is oneDNN's row-major C^T = op(B)^T op(A)^T.
void onednn_column_major(const char* transa, const char* transb, const int* m, const int* n,
                         const int* k, const float* alpha, const float* a, const int* lda,
                         const float* b, const int* ldb, const float* beta, float* c,
                         const int* ldc) {
  const bool done = dnnl_sgemm_fn() ? dnnl_sgemm_fn()(*transb, *transa, *n, *m, *k, *alpha, b, *ldb,
                                                      a, *lda, *beta, c, *ldc) == 0
                                    : mkldnn_column_major(*transa, *transb, *m, *n, *k, *alpha, a,
                                                          *lda, b, *ldb, *beta, c, *ldc);
  if (!done) {
    // Only invalid arguments fail; the BLAS then reports them its own (xerbla) way.
    blas_sgemm()(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

bool onednn_loaded() { return dnnl_sgemm_fn() || mkldnn_matmul_fn(); }

enum class Route { blas, onednn };

std::atomic<int64_t> onednn_products{0}, blas_products{0};

struct Routing {
  Route route = Route::blas;
  std::string why;
};

const Routing& routing() {
  static Routing r;
  static std::once_flag once;
  std::call_once(once, [] {
    const char* env = std::getenv("XMODAL_GEMM");
    const std::string mode = env ? env : "auto";
    if (!blas_sgemm()) {
      r.why = "no BLAS loaded";
    } else if (mode == "blas") {
      r.why = "XMODAL_GEMM=blas";
    } else if (!onednn_loaded()) {
      r.why = "oneDNN is not loaded";
    } else {
      if (mode != "auto") {
        log::warn("[runtime] XMODAL_GEMM={} ignored (expected auto or blas)", mode);
      }
      const std::string problem = check_sgemm(sgemm_check_cases(false), onednn_sgemm());
      if (problem.empty()) {
        r.route = Route::onednn;
      } else {
        r.why = "oneDNN failed its sgemm check: " + problem;
        log::warn("[runtime] matrix products stay on the BLAS: {}", r.why);
      }
    }
  });
  return r;
}

}  // namespace

SgemmFn blas_sgemm() {
  // libblas.so.3's sgemm_ (OpenBLAS, whose kernel table core/blas.h chooses and checks), looked
  // up in that library itself: with LibTorch 2.x the first sgemm_ after this executable's own
  // (RTLD_NEXT) is libtorch_cpu's, the wheel's MKL, which loads first. RTLD_NEXT stays the
  // fallback for a process without libblas.so.3.
  static const SgemmFn fn = [] {
    if (void* blas = dlopen("libblas.so.3", RTLD_LAZY | RTLD_NOLOAD)) {
      if (void* f = dlsym(blas, "sgemm_")) return reinterpret_cast<SgemmFn>(f);
    }
    return reinterpret_cast<SgemmFn>(dlsym(RTLD_NEXT, "sgemm_"));
  }();
  return fn;
}

SgemmFn onednn_sgemm() { return onednn_loaded() ? &onednn_column_major : nullptr; }

GemmCounts gemm_counts() {
  return {onednn_products.load(std::memory_order_relaxed),
          blas_products.load(std::memory_order_relaxed)};
}

bool gemm_uses_onednn() { return routing().route == Route::onednn; }

std::string gemm_routing() {
  const Routing& r = routing();
  if (r.route != Route::onednn) return "the BLAS for every product (" + r.why + ")";
  std::string version = "oneDNN";
  if (auto v = find_symbol<DnnlVersion>("dnnl_version")) {
    const DnnlVersionInfo* info = v();
    version += " " + std::to_string(info->major) + "." + std::to_string(info->minor) + "." +
               std::to_string(info->patch);
  } else if (!dnnl_sgemm_fn()) {
    version += " (LibTorch's at::native::mkldnn_matmul)";
  }
  return version + " for products of >= " + std::to_string(static_cast<int64_t>(kMinOneDnnWork)) +
         " multiply-adds outside parallel loops, the BLAS for the rest (XMODAL_GEMM=blas: "
         "the BLAS for all)";
}

}  // namespace xmodal

// The process's sgemm_ (see gemm.h). Default visibility, so that the executable exports it and
// libtorch_cpu's calls bind here.
extern "C" __attribute__((visibility("default"))) void sgemm_(
    const char* transa, const char* transb, const int* m, const int* n, const int* k,
    const float* alpha, const float* a, const int* lda, const float* b, const int* ldb,
    const float* beta, float* c, const int* ldc) {
  using namespace xmodal;
  const SgemmFn blas = blas_sgemm();
  if (!blas) {
    std::fprintf(stderr, "xmodal: error: sgemm_ called but no BLAS library is loaded\n");
    std::abort();
  }
  const double work = static_cast<double>(*m) * *n * *k;
  if (work >= kMinOneDnnWork && !at::in_parallel_region() && gemm_uses_onednn()) {
    onednn_products.fetch_add(1, std::memory_order_relaxed);
    onednn_column_major(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  } else {
    blas_products.fetch_add(1, std::memory_order_relaxed);
    blas(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}
