// Matrix-product libraries at the quickstart model's own shapes: OpenBLAS with each kernel
// table this CPU runs, BLIS (Debian's libblis4-openmp) and oneDNN's sgemm (libdnnl.so.2, the
// copy Debian's LibTorch links), and xmodal's routing between them (core/gemm.h). One markdown
// table, GFLOP/s per shape class, plus one JSON line per shape. Every library's result is compared
// with OpenBLAS's own kernel's.
//
//   build/xmodal_bench_gemm [--threads 2] [--seconds 0.2] [--rounds 2]
//
// Shapes are column-major BLAS calls, as LibTorch and models/attention.cpp issue them
// (core/blas.cpp, sgemm_check_cases, explains the mapping): Linear layers of the vision
// encoder (64 x 37 rows) and fusion (64 x 54 rows) over 2 threads, the pooled last fusion layer
// (64 rows), and the fused attention's per-(sample, head) products, 256 of them spread over
// the threads with one single-threaded call each.
#include <dlfcn.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "xmodal/core/blas.h"
#include "xmodal/core/cpu.h"
#include "xmodal/core/runtime.h"

namespace {

using Sgemm = void (*)(const char*, const char*, const int*, const int*, const int*, const float*,
                       const float*, const int*, const float*, const int*, const float*, float*,
                       const int*);
using DnnlSgemm = int (*)(char, char, int64_t, int64_t, int64_t, float, const float*, int64_t,
                          const float*, int64_t, float, float*, int64_t);

struct Shape {
  std::string group;
  char ta, tb;
  int m, n, k;
  float beta;
  int batch;  ///< > 1: that many independent single-threaded products (attention)
};

std::vector<Shape> model_shapes() {
  std::vector<Shape> shapes;
  const int linear[][2] = {{128, 384}, {128, 128}, {128, 512}, {512, 128}};
  for (int rows : {64 * 37, 64 * 54}) {
    for (const auto& io : linear) {
      shapes.push_back({"Linear forward", 'T', 'N', io[1], rows, io[0], 0.0f, 1});
      shapes.push_back({"Linear input grad", 'N', 'N', io[0], rows, io[1], 0.0f, 1});
      shapes.push_back({"Linear weight grad", 'N', 'T', io[0], io[1], rows, 1.0f, 1});
    }
  }
  for (const auto& io : linear) {
    if (io[1] != 384)
      shapes.push_back({"pooled layer (64 rows)", 'T', 'N', io[1], 64, io[0], 0.0f, 1});
  }
  for (int rows : {37, 54}) {  // predict: one sample
    for (const auto& io : linear) {
      shapes.push_back({"batch 1 forward (37/54 rows)", 'T', 'N', io[1], rows, io[0], 0.0f, 1});
    }
  }
  for (int len : {37, 54}) {
    shapes.push_back({"attention (256 x 1 thread)", 'T', 'N', len, len, 32, 0.0f, 256});
    shapes.push_back({"attention (256 x 1 thread)", 'N', 'N', 32, len, len, 0.0f, 256});
    shapes.push_back({"attention (256 x 1 thread)", 'N', 'T', 32, len, len, 0.0f, 256});
  }
  shapes.push_back({"square 1024", 'N', 'N', 1024, 1024, 1024, 0.0f, 1});
  return shapes;
}

struct Operands {
  std::vector<float> a, b, c;
  int lda, ldb, ldc;
};

Operands make(const Shape& s) {
  Operands o;
  o.lda = s.ta == 'N' ? s.m : s.k;
  o.ldb = s.tb == 'N' ? s.k : s.n;
  o.ldc = s.m;
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  o.a.resize(static_cast<size_t>(s.m) * s.k * s.batch);
  o.b.resize(static_cast<size_t>(s.k) * s.n * s.batch);
  o.c.assign(static_cast<size_t>(s.m) * s.n * s.batch, 0.0f);
  for (auto& x : o.a) x = u(rng);
  for (auto& x : o.b) x = u(rng);
  return o;
}

struct Library {
  std::string name;
  std::function<void()> prepare;                           // e.g. switch the OpenBLAS kernel table
  std::function<void(const Shape&, Operands&, int)> call;  // one product (index into batch)
  std::function<void(int)> set_threads;
};

void run_shape(const Library& lib, const Shape& s, Operands& o, int threads) {
  if (s.batch == 1) {
    lib.set_threads(threads);
    lib.call(s, o, 0);
    return;
  }
  lib.set_threads(1);
#pragma omp parallel for num_threads(threads) schedule(static)
  for (int i = 0; i < s.batch; ++i) lib.call(s, o, i);
}

double seconds_of(const std::function<void()>& fn, double budget) {
  fn();  // warm-up
  double best = 1e30;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0; i < 1000; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    fn();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
    if (i >= 2 && std::chrono::duration<double>(t1 - start).count() > budget) break;
  }
  return best;
}

double arg(int argc, char** argv, const char* name, double fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (std::string(argv[i]) == std::string("--") + name) return std::atof(argv[i + 1]);
  }
  return fallback;
}

}  // namespace

int main(int argc, char** argv) {
  const int threads = static_cast<int>(arg(argc, argv, "threads", 2));
  const double budget = arg(argc, argv, "seconds", 0.2);
  const int rounds = static_cast<int>(arg(argc, argv, "rounds", 3));
  xmodal::configure_threads(threads);
  const auto& cpu = xmodal::cpu_info();
  const std::string own = xmodal::select_blas_kernel().core;

  std::vector<Library> libs;
  // the BLAS's own sgemm_, and the process's (xmodal's routing, core/gemm.h)
  auto openblas = reinterpret_cast<Sgemm>(xmodal::blas_sgemm());
  auto routed = reinterpret_cast<Sgemm>(dlsym(RTLD_DEFAULT, "sgemm_"));
  auto openblas_threads =
      reinterpret_cast<void (*)(int)>(dlsym(RTLD_DEFAULT, "openblas_set_num_threads"));
  const auto blas_call = [](Sgemm f) {
    return [f](const Shape& s, Operands& o, int i) {
      const float alpha = 1.0f;
      f(&s.ta, &s.tb, &s.m, &s.n, &s.k, &alpha, o.a.data() + static_cast<size_t>(i) * s.m * s.k,
        &o.lda, o.b.data() + static_cast<size_t>(i) * s.k * s.n, &o.ldb, &s.beta,
        o.c.data() + static_cast<size_t>(i) * s.m * s.n, &o.ldc);
    };
  };
  std::vector<std::string> cores = {"Prescott"};
  if (cpu.avx2()) cores.insert(cores.end(), {"Haswell", "Zen"});
  if (cpu.avx512()) cores.push_back("SkylakeX");
  if (cpu.avx512() && cpu.has("avx512_bf16")) cores.push_back("Cooperlake");
  if (!own.empty()) {
    for (const auto& core : cores) {
      libs.push_back({"OpenBLAS " + core, [core] { xmodal::switch_openblas_core(core); },
                      blas_call(openblas), [openblas_threads](int n) { openblas_threads(n); }});
    }
  }
  if (void* blis = dlopen("/usr/lib/x86_64-linux-gnu/blis-openmp/libblis.so.4",
                          RTLD_NOW | RTLD_LOCAL | RTLD_DEEPBIND)) {
    auto f = reinterpret_cast<Sgemm>(dlsym(blis, "sgemm_"));
    auto t = reinterpret_cast<void (*)(long)>(dlsym(blis, "bli_thread_set_num_threads"));
    auto arch = reinterpret_cast<int (*)()>(dlsym(blis, "bli_arch_query_id"));
    auto arch_name = reinterpret_cast<const char* (*)(int)>(dlsym(blis, "bli_arch_string"));
    std::string name = "BLIS 0.9";
    if (arch && arch_name) name += std::string(" ") + arch_name(arch());
    if (f && t) libs.push_back({name, [] {}, blas_call(f), [t](int n) { t(n); }});
  } else {
    std::fprintf(stderr, "BLIS not measured: %s (apt-get install libblis4-openmp)\n", dlerror());
  }
  {
    auto f = reinterpret_cast<DnnlSgemm>(dlsym(RTLD_DEFAULT, "dnnl_sgemm"));  // LibTorch's copy
    if (f) {
      // row-major API: the column-major C = op(A) op(B) is the row-major C^T = op(B)^T op(A)^T
      libs.push_back({"oneDNN 2.6 sgemm", [] {},
                      [f](const Shape& s, Operands& o, int i) {
                        f(s.tb, s.ta, s.n, s.m, s.k, 1.0f,
                          o.b.data() + static_cast<size_t>(i) * s.k * s.n, o.ldb,
                          o.a.data() + static_cast<size_t>(i) * s.m * s.k, o.lda, s.beta,
                          o.c.data() + static_cast<size_t>(i) * s.m * s.n, o.ldc);
                      },
                      [](int n) { omp_set_num_threads(n); }});
    }
  }
  if (!own.empty()) {
    libs.push_back({"xmodal routing", [own] { xmodal::switch_openblas_core(own); },
                    blas_call(routed),
                    [openblas_threads](int n) {
                      openblas_threads(n);
                      omp_set_num_threads(n);
                    }});
  }

  const auto shapes = model_shapes();
  // reference results: OpenBLAS's own kernel
  std::vector<std::vector<float>> reference;
  if (!own.empty()) xmodal::switch_openblas_core(own);
  for (const auto& s : shapes) {
    Operands o = make(s);
    if (openblas)
      run_shape(
          {"", [] {}, blas_call(openblas), [openblas_threads](int n) { openblas_threads(n); }}, s,
          o, threads);
    reference.push_back(o.c);
  }

  std::map<std::pair<std::string, size_t>, double> best;  // (library, shape) -> seconds
  std::map<std::string, double> worst_error;
  for (int round = 0; round < rounds; ++round) {
    for (const auto& lib : libs) {
      lib.prepare();
      for (size_t i = 0; i < shapes.size(); ++i) {
        Operands o = make(shapes[i]);
        const double t = seconds_of([&] { run_shape(lib, shapes[i], o, threads); }, budget);
        auto key = std::make_pair(lib.name, i);
        best[key] = best.count(key) ? std::min(best[key], t) : t;
        if (round == 0) {
          // beta = 1 shapes accumulated over the repeats: compare a fresh single call
          Operands fresh = make(shapes[i]);
          run_shape(lib, shapes[i], fresh, threads);
          double err = 0.0, scale = 0.0;
          for (size_t j = 0; j < fresh.c.size(); ++j) {
            err = std::max(err, static_cast<double>(std::fabs(fresh.c[j] - reference[i][j])));
            scale = std::max(scale, static_cast<double>(std::fabs(reference[i][j])));
          }
          worst_error[lib.name] = std::max(worst_error[lib.name], err / std::max(scale, 1e-30));
        }
      }
    }
  }
  if (!own.empty()) xmodal::switch_openblas_core(own);

  std::vector<std::string> groups;
  for (const auto& s : shapes) {
    if (std::find(groups.begin(), groups.end(), s.group) == groups.end()) groups.push_back(s.group);
  }
  std::printf("CPU: %s (%s); %d threads; OpenBLAS's own kernel here: %s\n", cpu.model_name.c_str(),
              xmodal::describe_cpu(cpu).c_str(), threads, own.c_str());
  std::printf(
      "\nGFLOP/s per shape class (total FLOPs / total of each shape's best time; best of "
      "%d rounds)\n\n| shape class |",
      rounds);
  for (const auto& lib : libs) std::printf(" %s |", lib.name.c_str());
  std::printf("\n|---|");
  for (size_t i = 0; i < libs.size(); ++i) std::printf("---|");
  std::printf("\n");
  for (const auto& g : groups) {
    std::printf("| %s |", g.c_str());
    for (const auto& lib : libs) {
      double flops = 0.0, time = 0.0;
      for (size_t i = 0; i < shapes.size(); ++i) {
        if (shapes[i].group != g) continue;
        flops += 2.0 * shapes[i].m * shapes[i].n * shapes[i].k * shapes[i].batch;
        time += best[{lib.name, i}];
      }
      std::printf(" %.0f |", flops / time / 1e9);
    }
    std::printf("\n");
  }
  std::printf("| max relative difference to OpenBLAS %s |", own.c_str());
  for (const auto& lib : libs) std::printf(" %.1e |", worst_error[lib.name]);
  std::printf("\n\n");
  for (size_t i = 0; i < shapes.size(); ++i) {
    const auto& s = shapes[i];
    std::printf("{\"group\": \"%s\", \"call\": \"%c%c %dx%dx%d x%d\"", s.group.c_str(), s.ta, s.tb,
                s.m, s.n, s.k, s.batch);
    for (const auto& lib : libs) {
      std::printf(", \"%s\": %.1f", lib.name.c_str(),
                  2.0 * s.m * s.n * s.k * s.batch / best[{lib.name, i}] / 1e9);
    }
    std::printf("}\n");
  }
  return 0;
}
