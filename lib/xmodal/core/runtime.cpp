#include "xmodal/core/runtime.h"

#include <dlfcn.h>
#include <malloc.h>
#include <sched.h>

#include <ATen/Parallel.h>
#include <ATen/Version.h>
#include <torch/cuda.h>
#include <torch/torch.h>
#include <torch/version.h>

#include <chrono>
#include <fstream>
#include <mutex>
#include <regex>
#include <set>
#include <stdexcept>
#include <thread>

#include "xmodal/core/blas.h"
#include "xmodal/core/cpu.h"
#include "xmodal/core/gemm.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/strings.h"
#include "xmodal/core/version.h"

namespace xmodal {
namespace {

// Paths of the shared objects mapped into this process.
std::set<std::string> loaded_libraries() {
  std::set<std::string> paths;
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line)) {
    const size_t slash = line.find('/');
    if (slash != std::string::npos) paths.insert(line.substr(slash));
  }
  return paths;
}

}  // namespace

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) == 0) {
    const int n = CPU_COUNT(&set);
    if (n > 0) return n;
  }
  return std::max(1u, std::thread::hardware_concurrency());
}

std::string check_thread_count_variable(const std::string& name, const std::string& value,
                                        int cores, std::string* replacement) {
  const int64_t limit = 4 * static_cast<int64_t>(std::max(1, cores));
  bool valid = !value.empty(), clamp = false;
  size_t at = 0;
  while (valid && at <= value.size()) {  // each comma-separated level of "N,M,..."
    const size_t comma = std::min(value.find(',', at), value.size());
    const std::string level = value.substr(at, comma - at);
    valid = !level.empty() && level.size() <= 18 &&
            level.find_first_not_of("0123456789") == std::string::npos && std::stoll(level) > 0;
    if (valid && std::stoll(level) > limit) clamp = true;
    at = comma + 1;
  }
  const std::string shown = value.size() > 40 ? value.substr(0, 40) + "..." : value;
  if (!valid) {
    *replacement = "";
    return fmt::format("{}={} is not a positive thread count: ignored", name, shown);
  }
  if (!clamp) return "";
  *replacement = std::to_string(limit);
  return fmt::format("{}={} asks for more threads than {} cores can run: using {}", name, shown,
                     cores, limit);
}

void configure_allocator() {
  static std::once_flag once;
  std::call_once(once, [] {
    // glibc maps every block above its mmap threshold fresh and unmaps it on free, and trims
    // the heap top back to the OS: a training step then page-faults its activations in anew
    // (~600k faults in 40 steps of the quickstart model, 2x slower steps on this VM). Fixed
    // thresholds keep freed memory for the next step; the peak footprint is unchanged.
    mallopt(M_MMAP_THRESHOLD, 32 << 20);  // glibc's maximum on 64-bit
    mallopt(M_TRIM_THRESHOLD, 1 << 30);
    mallopt(M_TOP_PAD, 64 << 20);
  });
}

int configure_threads(int requested, int intra_op) {
  configure_allocator();
  const BlasKernel& kernel = select_blas_kernel();  // before any matrix product runs
  if (!kernel.broken.empty()) {
    throw std::runtime_error(
        "matrix products would be wrong on this machine: every OpenBLAS kernel tried failed the "
        "sgemm check (" +
        kernel.broken + "); set OPENBLAS_CORETYPE to a kernel that works");
  }
  if (requested < 0) {
    throw std::invalid_argument("threads must be >= 0 (0 = all cores), got " +
                                std::to_string(requested));
  }
  int n = requested == 0 ? available_cores() : requested;
  if (n > 4 * available_cores()) {  // spinning pools on a few cores crawl; say what runs
    log::warn("[runtime] {} threads asked for on {} cores; using {}", n, available_cores(),
              4 * available_cores());
    n = 4 * available_cores();
  }
  const BlasInfo blas = blas_info();
  const bool blas_has_own_pool = blas.name.rfind("OpenBLAS (pthread)", 0) == 0;
  if (intra_op < 0) {
    // OpenBLAS's pthread pool and LibTorch's OpenMP pool fight for the same cores: OpenMP
    // workers spin after each parallel region while OpenBLAS needs the cores for the next
    // product. Measured on 2 cores (scripts/bench/vit.sh, ViT-tiny, batch 32): OpenBLAS 2 +
    // intra-op 2: 110 fwd / 44 train samples/s; OpenBLAS 2 + intra-op 1: 190 / 93. Matrix
    // products are nearly all the work, so they get the threads. The OpenMP OpenBLAS (what
    // xmodal loads when libopenblas0-openmp is installed, see CMakeLists.txt) runs on
    // LibTorch's own pool: one pool, every core for both.
    intra_op = blas_has_own_pool ? 1 : n;
  }
  at::set_num_threads(std::max(1, intra_op));
  // OpenBLAS keeps its own pool; without this a "--threads 1" run would still use every core.
  if (auto set_blas = find_symbol<void (*)(int)>("openblas_set_num_threads")) set_blas(n);
  return n;
}

std::string check_device_spec(const std::string& spec) {
  static const std::regex pattern("auto|cpu|cuda(:[0-9]+)?");
  if (std::regex_match(spec, pattern)) return "";
  return "unknown device '" + spec + "' (expected auto, cpu, cuda or cuda:N)";
}

torch::Device resolve_device(const std::string& spec) {
  const std::string problem = check_device_spec(spec);
  if (!problem.empty()) throw std::invalid_argument(problem);
  if (spec == "cpu") return torch::kCPU;
  const bool cuda = torch::cuda::is_available();
  if (spec == "auto") return cuda ? torch::Device(torch::kCUDA, 0) : torch::Device(torch::kCPU);
  if (!cuda) {
    throw std::runtime_error("device '" + spec +
                             "' requested, but this LibTorch build sees no CUDA GPU "
                             "(use device: cpu or auto, or build against a CUDA LibTorch)");
  }
  int index = 0;
  if (spec.size() > 5) index = std::stoi(spec.substr(5));
  const int count = static_cast<int>(torch::cuda::device_count());
  if (index >= count) {
    throw std::runtime_error("device '" + spec + "' requested, but only " + std::to_string(count) +
                             " CUDA device(s) are visible");
  }
  return torch::Device(torch::kCUDA, static_cast<c10::DeviceIndex>(index));
}

BlasInfo blas_info() {
  BlasInfo info;
  for (const auto& path : loaded_libraries()) {
    if (path.find("libblas.so") != std::string::npos) info.library = path;
  }
  if (auto get_config = find_symbol<char* (*)()>("openblas_get_config")) {
    info.details = trim(get_config());
  }
  if (auto get_threads = find_symbol<int (*)()>("openblas_get_num_threads")) {
    info.threads = get_threads();
  }
  const std::string& lib = info.library;
  if (lib.find("openblas") != std::string::npos) {
    std::string variant = "pthread";
    if (lib.find("openblas-openmp") != std::string::npos) variant = "openmp";
    if (lib.find("openblas-serial") != std::string::npos) variant = "serial";
    info.name = "OpenBLAS (" + variant + ")";
    info.optimized = true;
  } else if (lib.find("blis") != std::string::npos) {
    info.name = "BLIS";
    info.optimized = true;
  } else if (lib.find("atlas") != std::string::npos) {
    info.name = "ATLAS";
    info.optimized = true;
  } else if (lib.find("mkl") != std::string::npos) {
    info.name = "MKL";
    info.optimized = true;
  } else if (!lib.empty()) {
    info.name =
        "reference BLAS (netlib): ~30x slower matrix products, install libopenblas0-pthread";
  } else {
    info.name = "none loaded (LibTorch's built-in kernels)";
  }
  return info;
}

std::vector<std::string> available_devices() {
  std::vector<std::string> devices = {"cpu"};
  if (torch::cuda::is_available()) {
    for (size_t i = 0; i < static_cast<size_t>(torch::cuda::device_count()); ++i) {
      devices.push_back("cuda:" + std::to_string(i));
    }
  }
  return devices;
}

namespace {

// The best rate (GFLOP/s) of `product`, an n x n x n matrix product, over at least 3 repeats and
// ~min_seconds (at most 1000 repeats).
template <class Product>
double best_gflops(int n, double min_seconds, const Product& product) {
  const double flops = 2.0 * n * n * static_cast<double>(n);
  double best = 0.0;
  const auto start = std::chrono::steady_clock::now();
  int repeats = 0;
  while (repeats < 3 ||
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() <
             min_seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    product();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, flops / s / 1e9);
    if (++repeats >= 1000) break;
  }
  return best;
}

}  // namespace

double measure_matmul_gflops(int n, double min_seconds, bool blas_only) {
  torch::NoGradGuard no_grad;
  auto a = torch::randn({n, n});
  auto b = torch::randn({n, n});
  auto c = torch::mm(a, b);  // warm-up: thread pools, page faults
  const SgemmFn sgemm = blas_only ? blas_sgemm() : nullptr;
  if (blas_only && !sgemm) return 0.0;
  const float alpha = 1.0f, beta = 0.0f;
  const auto product = [&] {
    if (sgemm) {
      sgemm("N", "N", &n, &n, &n, &alpha, b.data_ptr<float>(), &n, a.data_ptr<float>(), &n, &beta,
            c.data_ptr<float>(), &n);
    } else {
      torch::mm_out(c, a, b);
    }
  };
  product();
  return best_gflops(n, min_seconds, product);
}

double measure_bf16_matmul_gflops(int n, double min_seconds) {
  torch::NoGradGuard no_grad;
  const auto a = torch::randn({n, n}).to(torch::kBFloat16);
  const auto b = torch::randn({n, n}).to(torch::kBFloat16);
  auto c = torch::mm(a, b);  // warm-up: oneDNN generates its kernels
  return best_gflops(n, min_seconds, [&] { torch::mm_out(c, a, b); });
}

std::string libtorch_summary() {
  // "Intel(R) oneDNN v3.7.1 (Git Hash ...)" -> "v3.7.1"
  std::string onednn = at::get_mkldnn_version();
  const auto v = onednn.find(" v");
  if (v != std::string::npos) onednn = onednn.substr(v + 1, onednn.find(' ', v + 1) - v - 1);
  std::string line = std::string(TORCH_VERSION) + ", oneDNN " +
                     (onednn.empty() ? std::string("none") : onednn) + ", CPU capability " +
                     at::get_cpu_capability();
  if (!built_with_cuda()) return line + ", CUDA not compiled in";
  return line + ", CUDA compiled in (" +
         (torch::cuda::is_available()
              ? std::to_string(torch::cuda::device_count()) + " device(s) present)"
              : std::string("no device present)"));
}

std::vector<std::string> runtime_summary() {
  std::vector<std::string> lines;
  const BlasInfo blas = blas_info();
  lines.push_back("xmodal " + version() + ", LibTorch " + TORCH_VERSION);
  lines.push_back("LibTorch: " + libtorch_summary());
  const CpuInfo& cpu = cpu_info();
  lines.push_back("CPU: " + (cpu.model_name.empty() ? std::string("unknown") : cpu.model_name) +
                  " (" + describe_cpu(cpu) + ")");
  lines.push_back("cores: " + std::to_string(available_cores()) + ", compute threads: " +
                  std::to_string(blas.threads > 0 ? blas.threads : at::get_num_threads()) +
                  " (matrix products on BLAS threads; LibTorch intra-op threads: " +
                  std::to_string(at::get_num_threads()) +
                  ", inter-op threads: " + std::to_string(at::get_num_interop_threads()) + ")");
  std::string blas_line = "BLAS: " + blas.name;
  if (blas.threads > 0) blas_line += ", threads: " + std::to_string(blas.threads);
  if (!blas.library.empty()) blas_line += " [" + blas.library + "]";
  lines.push_back(blas_line);
  if (!blas.details.empty()) lines.push_back("BLAS config: " + blas.details);
  const BlasKernel& kernel = select_blas_kernel();
  if (!kernel.core.empty()) {
    std::string line = "BLAS kernel: " + kernel.core + " (" + kernel.how + ")";
    if (kernel.slow) line += "; WARNING: " + slow_kernel_warning(kernel);
    if (!kernel.note.empty()) line += "; " + kernel.note;
    if (!kernel.broken.empty()) line += "; ERROR: every kernel tried failed the sgemm check";
    lines.push_back(line);
    if (!kernel.rejected.empty()) lines.push_back("BLAS kernel rejected: " + kernel.rejected);
  }
  // Which library's sgemm_ the routing hands products to: the first after this executable's own.
  // With LibTorch 2.x that is libtorch_cpu's (the wheel's MKL exports sgemm_ and loads before
  // libblas.so.3), so OpenBLAS then serves FAISS and LAPACK only.
  std::string products = "matrix products: " + gemm_routing();
  Dl_info where{};
  if (auto fn = blas_sgemm();
      fn && dladdr(reinterpret_cast<void*>(fn), &where) && where.dli_fname) {
    const std::string lib = where.dli_fname;
    products += "; sgemm_ from " + lib.substr(lib.find_last_of('/') + 1);
  }
  lines.push_back(products);
  lines.push_back("devices: " + join(available_devices(), ", "));
  return lines;
}

void log_runtime_summary() {
  for (const auto& line : runtime_summary()) log::info("[runtime] {}", line);
  if (!blas_info().optimized) {
    log::warn("[runtime] matrix products run on the reference BLAS; install libopenblas0-pthread");
  }
}

}  // namespace xmodal
