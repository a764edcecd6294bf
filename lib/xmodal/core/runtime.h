// Threads, devices and the numeric back end: what the process runs on, set once at start.
#pragma once

#include <c10/core/Device.h>

#include <string>
#include <vector>

namespace xmodal {

/// Cores this process may run on (its CPU affinity mask), at least 1.
int available_cores();

/// A thread-count variable (OMP_NUM_THREADS, MKL_NUM_THREADS: "N" or OpenMP's "N,M,...")
/// checked against what `cores` cores can run: "" when it is fine; else the one-line warning,
/// with `*replacement` set to the value to use ("" = unset the variable). Zero, a negative
/// number or no number is ignored (LibTorch would stop with a stack trace); more than 4 threads
/// per core is clamped (libgomp fails or crashes creating 100,000 threads).
std::string check_thread_count_variable(const std::string& name, const std::string& value,
                                        int cores, std::string* replacement);

/// Makes glibc's malloc keep freed memory for reuse instead of unmapping it (a training step
/// would otherwise page-fault its activations in anew every time). Idempotent; called by
/// configure_threads().
void configure_allocator();

/// Sets the compute threads to `requested` (0 = all available cores): OpenBLAS's pool gets
/// them all (matrix products are nearly all the work). LibTorch's intra-op (OpenMP) threads are
/// `intra_op`, or with -1: 1 when OpenBLAS runs its own pthread pool (two pools spinning on the
/// same cores halve throughput, see runtime.cpp), else `requested`. Returns the compute threads.
/// Throws std::invalid_argument for a negative count.
int configure_threads(int requested, int intra_op = -1);

/// Resolves "auto" | "cpu" | "cuda" | "cuda:N". "auto" picks CUDA device 0 when this LibTorch
/// build sees a GPU, else the CPU. Throws std::invalid_argument for a malformed spec and
/// std::runtime_error for a CUDA device that is not there.
c10::Device resolve_device(const std::string& spec);

/// Checks the syntax of a device spec without touching any device; returns an error message
/// ("" when valid).
std::string check_device_spec(const std::string& spec);

/// The BLAS library LibTorch's matrix products actually run on, read from the process's
/// loaded libraries (Debian's LibTorch reports BLAS_INFO=generic whatever is installed).
struct BlasInfo {
  std::string name;        ///< "OpenBLAS (pthread)", "reference BLAS (netlib)", "BLIS", ...
  std::string library;     ///< path of the loaded libblas.so.3 (after symlinks), or ""
  std::string details;     ///< e.g. OpenBLAS's own config string
  int threads = 0;         ///< BLAS's own thread count where it reports one, else 0
  bool optimized = false;  ///< false for the reference BLAS (~30x slower matrix products)
};
BlasInfo blas_info();

/// Devices this build can use: "cpu" plus "cuda:N" for each visible GPU.
std::vector<std::string> available_devices();

/// fp32 matrix-product rate (GFLOP/s) of an n x n x n product, best of repeats over ~min_seconds.
/// `blas_only`: the BLAS's own sgemm (its kernel table), bypassing the routing of core/gemm.h;
/// else torch::mm, i.e. what LibTorch's products get.
double measure_matmul_gflops(int n, double min_seconds, bool blas_only = false);

/// bf16 matrix-product rate (GFLOP/s) of an n x n x n torch::mm on bfloat16 tensors (LibTorch's
/// oneDNN; native on CPUs with AVX512-BF16 or AMX), best of repeats over ~min_seconds.
double measure_bf16_matmul_gflops(int n, double min_seconds);

/// One line per fact: versions, threads, BLAS, devices. Used by `xmodal info` and logged once
/// at the start of every command that computes.
std::vector<std::string> runtime_summary();

/// "2.11.0, oneDNN v3.7.1, CPU capability AVX512, CUDA not compiled in": the LibTorch in use.
std::string libtorch_summary();

/// Logs runtime_summary() at info level, prefixed with "[runtime]".
void log_runtime_summary();

}  // namespace xmodal
