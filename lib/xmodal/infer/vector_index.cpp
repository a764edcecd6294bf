#include "xmodal/infer/vector_index.h"

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <stdexcept>

#include "xmodal/build_config.h"

#if XMODAL_HAVE_FAISS
#include <faiss/IndexFlat.h>
#include <faiss/IndexHNSW.h>
#include <faiss/IndexIVFFlat.h>
#include <faiss/impl/FaissException.h>
#include <faiss/impl/io.h>
#include <faiss/index_io.h>
#endif

#include "xmodal/core/error.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::infer {

std::string backend_name(SearchBackend backend) {
  switch (backend) {
    case SearchBackend::flat:
      return "flat";
    case SearchBackend::ivf:
      return "ivf";
    case SearchBackend::hnsw:
      return "hnsw";
  }
  return "?";
}

SearchBackend parse_backend(const std::string& name) {
  for (const auto b : {SearchBackend::flat, SearchBackend::ivf, SearchBackend::hnsw}) {
    if (backend_name(b) == name) return b;
  }
  throw std::invalid_argument("unknown search backend '" + name +
                              "' (expected one of: flat, ivf, hnsw)");
}

#if XMODAL_HAVE_FAISS
bool have_faiss() { return true; }
#else
bool have_faiss() { return false; }
#endif

SearchHits exact_search(const torch::Tensor& vectors, const torch::Tensor& queries, int64_t k) {
  TORCH_CHECK(vectors.dim() == 2 && queries.dim() == 2 && vectors.size(1) == queries.size(1),
              "search: the query's dimension (", queries.size(-1), ") is not the index's (",
              vectors.size(-1), ")");
  SearchHits hits;
  const int64_t n = vectors.size(0), kk = std::min(k, n);
  if (kk == 0) {
    hits.scores = torch::empty({queries.size(0), 0});
    hits.ids = torch::empty({queries.size(0), 0}, torch::kLong);
    return hits;
  }
  // Chunks of the collection bound the memory of the score matrix; the best k of each chunk
  // are merged. Equal scores go to the lower row: within a chunk, its candidates sorted by row
  // and then, stably, by score; across chunks (in row order) one stable sort.
  constexpr int64_t kChunk = 1 << 18;
  std::vector<torch::Tensor> scores, ids;
  for (int64_t start = 0; start < n; start += kChunk) {
    const int64_t len = std::min(kChunk, n - start);
    const auto s = torch::matmul(queries, vectors.narrow(0, start, len).t());
    const int64_t kc = std::min(kk, len);
    auto [top, arg] = s.topk(kc, 1);
    // topk picks among scores equal to the k-th one at will: where more rows than it took
    // reach that score, the chunk is sorted whole (stable: the lower rows first).
    const auto reached = s.ge(top.narrow(1, kc - 1, 1)).sum(1);
    if (reached.gt(kc).any().item<bool>()) {
      auto [sorted, order] = s.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true);
      top = sorted.narrow(1, 0, kc);
      arg = order.narrow(1, 0, kc);
    } else {
      const auto by_row = std::get<1>(arg.sort(1));
      arg = arg.gather(1, by_row);
      top = top.gather(1, by_row);
      const auto by_score = std::get<1>(top.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true));
      arg = arg.gather(1, by_score);
      top = top.gather(1, by_score);
    }
    scores.push_back(top);
    ids.push_back(arg + start);
  }
  const auto all_scores = torch::cat(scores, 1), all_ids = torch::cat(ids, 1);
  const auto order = std::get<1>(all_scores.sort(/*stable=*/true, /*dim=*/1, /*descending=*/true))
                         .narrow(1, 0, kk);
  hits.scores = all_scores.gather(1, order).contiguous();
  hits.ids = all_ids.gather(1, order).contiguous();
  return hits;
}

#if XMODAL_HAVE_FAISS

struct AnnIndex::Impl {
  std::unique_ptr<faiss::Index> index;
  AnnOptions options;

  void configure() const {
    // Clamped to what the index holds: more lists than it has, or more candidates than its
    // vectors, find nothing more (an efSearch of 2e9 on 16 vectors took 11 GB)
    if (auto* ivf = dynamic_cast<faiss::IndexIVF*>(index.get())) {
      const int64_t lists = std::max<int64_t>(1, static_cast<int64_t>(ivf->nlist));
      ivf->nprobe = static_cast<size_t>(std::clamp<int64_t>(options.nprobe, 1, lists));
    }
    if (auto* hnsw = dynamic_cast<faiss::IndexHNSW*>(index.get())) {
      const int64_t vectors = std::max<int64_t>(1, static_cast<int64_t>(index->ntotal));
      hnsw->hnsw.efSearch = static_cast<int>(std::clamp<int64_t>(options.ef_search, 1, vectors));
    }
  }
};

namespace {

torch::Tensor as_float_rows(const torch::Tensor& t) {
  TORCH_CHECK(t.dim() == 2, "vectors must be [N, D]");
  return t.to(torch::kCPU, torch::kFloat32).contiguous();
}

struct VectorWriter : faiss::IOWriter {
  std::string bytes;
  size_t operator()(const void* ptr, size_t size, size_t items) override {
    bytes.append(static_cast<const char*>(ptr), size * items);
    return items;
  }
};

}  // namespace

AnnIndex::AnnIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AnnIndex::~AnnIndex() = default;
AnnIndex::AnnIndex(AnnIndex&&) noexcept = default;
AnnIndex& AnnIndex::operator=(AnnIndex&&) noexcept = default;

AnnIndex AnnIndex::build(SearchBackend backend, const torch::Tensor& vectors,
                         const AnnOptions& options) {
  const auto x = as_float_rows(vectors);
  const int64_t n = x.size(0), d = x.size(1);
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  try {
    if (backend == SearchBackend::ivf) {
      int64_t nlist = options.nlist > 0
                          ? options.nlist
                          : static_cast<int64_t>(4 * std::sqrt(static_cast<double>(n)));
      nlist = std::max<int64_t>(1, std::min(nlist, n / 39));  // FAISS wants >= 39 per list
      auto quantizer = std::make_unique<faiss::IndexFlatIP>(d);
      auto ivf = std::make_unique<faiss::IndexIVFFlat>(quantizer.get(), d, nlist,
                                                       faiss::METRIC_INNER_PRODUCT);
      ivf->own_fields = true;
      quantizer.release();
      // k-means on at most 256 points per list (FAISS warns beyond that and subsamples itself)
      const int64_t train_n = std::min<int64_t>(n, 256 * nlist);
      const auto sample =
          train_n < n ? x.index_select(0, torch::randperm(n, torch::kLong).narrow(0, 0, train_n))
                            .contiguous()
                      : x;
      ivf->train(train_n, sample.data_ptr<float>());
      ivf->add(n, x.data_ptr<float>());
      impl->index = std::move(ivf);
    } else if (backend == SearchBackend::hnsw) {
      auto hnsw = std::make_unique<faiss::IndexHNSWFlat>(d, static_cast<int>(options.hnsw_m),
                                                         faiss::METRIC_INNER_PRODUCT);
      hnsw->hnsw.efConstruction = static_cast<int>(options.ef_construction);
      hnsw->add(n, x.data_ptr<float>());
      impl->index = std::move(hnsw);
    } else {
      throw std::invalid_argument("AnnIndex: backend flat is the exact search, not a FAISS index");
    }
  } catch (const faiss::FaissException& e) {
    throw std::runtime_error(std::string("FAISS: ") + e.what());
  }
  impl->configure();
  return AnnIndex(std::move(impl));
}

AnnIndex AnnIndex::load(const std::string& path, const AnnOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  try {
    impl->index.reset(faiss::read_index(path.c_str()));
  } catch (const faiss::FaissException& e) {
    throw std::runtime_error(path + ": not a readable FAISS index (" + e.what() + ")");
  }
  impl->configure();
  return AnnIndex(std::move(impl));
}

std::string AnnIndex::serialize() const {
  VectorWriter writer;
  faiss::write_index(impl_->index.get(), &writer);
  return std::move(writer.bytes);
}

void AnnIndex::save(const std::string& path) const { io::write_file_atomic(path, serialize()); }

SearchHits AnnIndex::search(const torch::Tensor& queries, int64_t k) const {
  const auto q = as_float_rows(queries);
  TORCH_CHECK(q.size(1) == dim(), "search: the query's dimension (", q.size(1),
              ") is not the index's (", dim(), ")");
  const int64_t kk = std::min<int64_t>(k, size());
  SearchHits hits;
  hits.scores = torch::empty({q.size(0), kk}, torch::kFloat32);
  hits.ids = torch::empty({q.size(0), kk}, torch::kLong);
  if (kk > 0) {
    impl_->configure();
    impl_->index->search(q.size(0), q.data_ptr<float>(), kk, hits.scores.data_ptr<float>(),
                         hits.ids.data_ptr<int64_t>());
  }
  return hits;
}

void AnnIndex::set_options(const AnnOptions& options) {
  impl_->options = options;
  impl_->configure();
}

int64_t AnnIndex::size() const { return impl_->index->ntotal; }
int64_t AnnIndex::dim() const { return impl_->index->d; }
int64_t AnnIndex::bytes() const {
  VectorWriter writer;
  faiss::write_index(impl_->index.get(), &writer);
  return static_cast<int64_t>(writer.bytes.size());
}

#else  // no FAISS in this build

struct AnnIndex::Impl {};
AnnIndex::AnnIndex(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
AnnIndex::~AnnIndex() = default;
AnnIndex::AnnIndex(AnnIndex&&) noexcept = default;
AnnIndex& AnnIndex::operator=(AnnIndex&&) noexcept = default;

namespace {
[[noreturn]] void no_faiss() {
  throw OptionError(
      "", "this xmodal was built without FAISS (Debian: libfaiss-dev): only {backend} flat");
}
}  // namespace

AnnIndex AnnIndex::build(SearchBackend, const torch::Tensor&, const AnnOptions&) { no_faiss(); }
AnnIndex AnnIndex::load(const std::string&, const AnnOptions&) { no_faiss(); }
std::string AnnIndex::serialize() const { no_faiss(); }
void AnnIndex::save(const std::string&) const { no_faiss(); }
void AnnIndex::set_options(const AnnOptions&) { no_faiss(); }
SearchHits AnnIndex::search(const torch::Tensor&, int64_t) const { no_faiss(); }
int64_t AnnIndex::size() const { return 0; }
int64_t AnnIndex::dim() const { return 0; }
int64_t AnnIndex::bytes() const { return 0; }

#endif

}  // namespace xmodal::infer
