#include "xmodal/core/gemm.h"

#include <dlfcn.h>

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

// The column-major call C = op(A) op(B) is oneDNN's row-major C^T = op(B)^T op(A)^T.
void onednn_column_major(const char* transa, const char* transb, const int* m, const int* n,
                         const int* k, const float* alpha, const float* a, const int* lda,
                         const float* b, const int* ldb, const float* beta, float* c,
                         const int* ldc) {
  const int status =
      dnnl_sgemm_fn()(*transb, *transa, *n, *m, *k, *alpha, b, *ldb, a, *lda, *beta, c, *ldc);
  if (status != 0) {
    // Only invalid arguments fail; the BLAS then reports them its own (xerbla) way.
    blas_sgemm()(transa, transb, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc);
  }
}

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
    } else if (!dnnl_sgemm_fn()) {
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

SgemmFn onednn_sgemm() { return dnnl_sgemm_fn() ? &onednn_column_major : nullptr; }

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
