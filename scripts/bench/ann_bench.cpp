// Nearest-neighbour search backends of `xmodal search` on random unit vectors: exact (one matrix
// product, LibTorch), FAISS IVF-Flat and HNSW-Flat (scripts/bench/ann.sh runs it).
// Prints one JSON line per backend setting: build seconds, index bytes, the process's resident
// memory after building, query latency (one query at a time, median and p95 ms; and the mean
// per query in a batch of all queries), and recall@10 against the exact search.
#include <torch/torch.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "xmodal/core/runtime.h"
#include "xmodal/infer/vector_index.h"

namespace {

int64_t arg(int argc, char** argv, const std::string& name, int64_t fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return std::atoll(argv[i + 1]);
  }
  return fallback;
}

std::string sarg(int argc, char** argv, const std::string& name, const std::string& fallback) {
  for (int i = 1; i + 1 < argc; ++i) {
    if (argv[i] == "--" + name) return argv[i + 1];
  }
  return fallback;
}

double now_s() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

double rss_mb() {
  std::ifstream f("/proc/self/status");
  std::string line;
  while (std::getline(f, line)) {
    if (line.rfind("VmRSS:", 0) == 0) return std::atof(line.c_str() + 6) / 1024.0;
  }
  return 0;
}

torch::Tensor unit(torch::Tensor x) { return x / x.norm(2, 1, true); }

// Recall@k: the share of the exact top k found in the approximate top k.
double recall(const torch::Tensor& exact, const torch::Tensor& approx) {
  int64_t found = 0;
  for (int64_t q = 0; q < exact.size(0); ++q) {
    const auto e = exact[q], a = approx[q];
    found += torch::isin(e, a).sum().item<int64_t>();
  }
  return static_cast<double>(found) / static_cast<double>(exact.numel());
}

template <class Search>
void measure(const char* backend, const std::string& setting, double build_s, int64_t bytes,
             const torch::Tensor& queries, const torch::Tensor& truth, int64_t k, Search search) {
  std::vector<double> ms;
  torch::Tensor ids = torch::empty({queries.size(0), k}, torch::kLong);
  for (int64_t q = 0; q < queries.size(0); ++q) {
    const double t0 = now_s();
    const auto hits = search(queries.narrow(0, q, 1), k);
    ms.push_back(1000 * (now_s() - t0));
    ids[q].copy_(hits.ids[0]);
  }
  const double t0 = now_s();
  search(queries, k);
  const double batch_ms = 1000 * (now_s() - t0) / static_cast<double>(queries.size(0));
  std::sort(ms.begin(), ms.end());
  std::printf(
      "{\"backend\": \"%s\", \"setting\": \"%s\", \"build_s\": %.2f, \"index_mb\": %.1f, "
      "\"rss_mb\": %.0f, \"query_ms_p50\": %.3f, \"query_ms_p95\": %.3f, "
      "\"batch_ms_per_query\": %.3f, \"recall_at_10\": %.4f}\n",
      backend, setting.c_str(), build_s, bytes / 1048576.0, rss_mb(), ms[ms.size() / 2],
      ms[ms.size() * 95 / 100], batch_ms, truth.defined() ? recall(truth, ids) : 1.0);
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  const int64_t n = arg(argc, argv, "n", 1000000), d = arg(argc, argv, "dim", 256);
  const int64_t nq = arg(argc, argv, "queries", 200), k = 10;
  const std::string backends = sarg(argc, argv, "backends", "flat,ivf,hnsw");
  xmodal::configure_threads(static_cast<int>(arg(argc, argv, "threads", 0)));
  torch::manual_seed(1);
  const double t0 = now_s();
  const auto x = unit(torch::randn({n, d})).contiguous();
  const auto queries = unit(torch::randn({nq, d})).contiguous();
  std::fprintf(stderr, "[ann] %lld x %lld random unit vectors in %.1f s, %lld queries\n",
               static_cast<long long>(n), static_cast<long long>(d), now_s() - t0,
               static_cast<long long>(nq));
  const auto exact = xmodal::infer::exact_search(x, queries, k).ids;
  measure(
      "flat", "exact", 0.0, n * d * 4, queries, exact, k,
      [&](const torch::Tensor& q, int64_t kk) { return xmodal::infer::exact_search(x, q, kk); });
  using xmodal::infer::AnnIndex;
  using xmodal::infer::AnnOptions;
  using xmodal::infer::SearchBackend;
  const auto search_with = [](AnnIndex& index) {
    return [&index](const torch::Tensor& q, int64_t kk) { return index.search(q, kk); };
  };
  if (backends.find("ivf") != std::string::npos) {
    AnnOptions o;
    o.nlist = arg(argc, argv, "nlist", 1024);
    const double b0 = now_s();
    auto index = AnnIndex::build(SearchBackend::ivf, x, o);
    const double build = now_s() - b0;
    const int64_t bytes = index.bytes();
    for (const int64_t nprobe : {8, 32, 128}) {
      o.nprobe = nprobe;
      index.set_options(o);
      measure("ivf", "nlist " + std::to_string(o.nlist) + ", nprobe " + std::to_string(nprobe),
              build, bytes, queries, exact, k, search_with(index));
    }
  }
  if (backends.find("hnsw") != std::string::npos) {
    AnnOptions o;
    o.hnsw_m = arg(argc, argv, "hnsw-m", 32);
    o.ef_construction = arg(argc, argv, "ef-construction", 64);
    const double b0 = now_s();
    auto index = AnnIndex::build(SearchBackend::hnsw, x, o);
    const double build = now_s() - b0;
    const int64_t bytes = index.bytes();
    for (const int64_t ef : {32, 128, 512}) {
      o.ef_search = ef;
      index.set_options(o);
      measure("hnsw",
              "M " + std::to_string(o.hnsw_m) + ", efConstruction " +
                  std::to_string(o.ef_construction) + ", efSearch " + std::to_string(ef),
              build, bytes, queries, exact, k, search_with(index));
    }
  }
  return 0;
}
