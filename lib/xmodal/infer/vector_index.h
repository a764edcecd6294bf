// Nearest-neighbour search over L2-normalised embeddings by inner product (cosine): exact (one
// matrix product and a top-k, LibTorch) or approximate with FAISS (an inverted file, IVF-Flat,
// or a graph, HNSW-Flat), the library made for it. `xmodal index` builds one, `xmodal search`
// queries it; scripts/bench/ann.sh measures the three on 1M random vectors.
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <memory>
#include <string>

namespace xmodal::infer {

enum class SearchBackend { flat, ivf, hnsw };

/// "flat", "ivf", "hnsw"; parse throws std::invalid_argument naming the value.
std::string backend_name(SearchBackend backend);
SearchBackend parse_backend(const std::string& name);

/// Whether this build has FAISS (the ivf and hnsw backends).
bool have_faiss();

struct AnnOptions {
  int64_t nlist = 0;    ///< ivf: inverted lists; 0 = 4 sqrt(N) (FAISS's guideline), at most N/39
  int64_t nprobe = 16;  ///< ivf: lists visited per query
  int64_t hnsw_m = 32;  ///< hnsw: links per node
  int64_t ef_construction = 64;  ///< hnsw: candidates kept while building
  int64_t ef_search = 64;        ///< hnsw: candidates kept while searching (>= k)
};
// FAISS runs on the OpenMP threads LibTorch configures (run.threads / --threads).

struct SearchHits {
  torch::Tensor scores;  ///< [Q, k] float32, best first
  torch::Tensor ids;     ///< [Q, k] int64 rows of the indexed vectors; -1 where fewer than k
};

/// Exact search: the k best rows of `vectors` [N, D] for each query [Q, D] (ties: lower row).
SearchHits exact_search(const torch::Tensor& vectors, const torch::Tensor& queries, int64_t k);

/// An approximate index (FAISS) over float32 vectors, inner-product metric.
class AnnIndex {
 public:
  ~AnnIndex();
  AnnIndex(AnnIndex&&) noexcept;
  AnnIndex& operator=(AnnIndex&&) noexcept;

  /// Builds `backend` (ivf or hnsw) over `vectors` [N, D] (ivf trains its coarse quantiser on
  /// them, or on a sample of at most 256 per list). Throws std::invalid_argument without FAISS.
  static AnnIndex build(SearchBackend backend, const torch::Tensor& vectors,
                        const AnnOptions& options);
  /// Reads an index written by save(); throws std::runtime_error naming the file.
  static AnnIndex load(const std::string& path, const AnnOptions& options);
  /// The index as FAISS writes it (what load() reads).
  std::string serialize() const;
  /// Writes serialize() atomically.
  void save(const std::string& path) const;

  /// Replaces the search-time options (nprobe, ef_search).
  void set_options(const AnnOptions& options);
  SearchHits search(const torch::Tensor& queries, int64_t k) const;
  int64_t size() const;
  int64_t dim() const;
  /// The index's own memory (FAISS's serialised size, which is what it holds).
  int64_t bytes() const;

 private:
  struct Impl;
  explicit AnnIndex(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace xmodal::infer
