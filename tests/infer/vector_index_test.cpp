// infer::exact_search against a brute force computed here (ties, k past the collection, the
// chunks of a large collection), and the FAISS backends (AnnIndex) against exact_search: an
// exhaustive IVF or HNSW finds what the exact search finds, serialise/save/load round trips,
// unreadable files refused naming the file. The FAISS tests skip in a build without FAISS,
// where AnnIndex must refuse instead.
#include "xmodal/infer/vector_index.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <filesystem>
#include <numeric>
#include <set>
#include <string>
#include <vector>

#include "../support/fixtures.h"
#include "../support/temp_dir.h"
#include "xmodal/build_config.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::infer {
namespace {

using xmodal::testing::error_of;
using xmodal::testing::TempDir;

// `n` random unit rows of width `d` (fixed seed).
torch::Tensor unit_rows(int64_t n, int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  const auto x = torch::randn({n, d});
  return x / x.norm(2, 1, true);
}

struct Expected {
  std::vector<std::vector<int64_t>> ids;
  std::vector<std::vector<double>> scores;
};

// For each query the k best rows by inner product in double precision, ties to the lower row.
Expected brute_force(const torch::Tensor& vectors, const torch::Tensor& queries, int64_t k) {
  const auto v = vectors.to(torch::kFloat64).contiguous();
  const auto q = queries.to(torch::kFloat64).contiguous();
  const auto va = v.accessor<double, 2>();
  const auto qa = q.accessor<double, 2>();
  Expected e;
  for (int64_t i = 0; i < q.size(0); ++i) {
    std::vector<double> s(static_cast<size_t>(v.size(0)));
    for (int64_t r = 0; r < v.size(0); ++r) {
      for (int64_t j = 0; j < v.size(1); ++j) s[r] += qa[i][j] * va[r][j];
    }
    std::vector<int64_t> order(s.size());
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return s[a] > s[b]; });
    order.resize(static_cast<size_t>(std::min<int64_t>(k, v.size(0))));
    std::vector<double> top;
    for (const int64_t r : order) top.push_back(s[r]);
    e.ids.push_back(order);
    e.scores.push_back(top);
  }
  return e;
}

std::vector<int64_t> row_of(const torch::Tensor& ids, int64_t r) {
  const auto row = ids[r].contiguous();
  return std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + row.numel());
}

void expect_hits_equal(const SearchHits& hits, const Expected& e) {
  ASSERT_EQ(hits.ids.size(0), static_cast<int64_t>(e.ids.size()));
  ASSERT_EQ(hits.scores.sizes(), hits.ids.sizes());
  EXPECT_EQ(hits.scores.scalar_type(), torch::kFloat32);
  EXPECT_EQ(hits.ids.scalar_type(), torch::kLong);
  for (int64_t r = 0; r < hits.ids.size(0); ++r) {
    EXPECT_EQ(row_of(hits.ids, r), e.ids[r]) << "query " << r;
    for (size_t j = 0; j < e.scores[r].size(); ++j) {
      EXPECT_NEAR(hits.scores[r][j].item<double>(), e.scores[r][j], 1e-5) << r << " " << j;
    }
  }
}

TEST(VectorIndex, BackendNamesRoundTripAndAnUnknownOneIsNamed) {
  for (const auto b : {SearchBackend::flat, SearchBackend::ivf, SearchBackend::hnsw}) {
    EXPECT_EQ(parse_backend(backend_name(b)), b);
  }
  EXPECT_EQ(backend_name(SearchBackend::hnsw), "hnsw");
  try {
    parse_backend("HNSW");
    FAIL() << "HNSW was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_EQ(std::string(e.what()),
              "unknown search backend 'HNSW' (expected one of: flat, ivf, hnsw)");
  }
  EXPECT_EQ(have_faiss(), XMODAL_HAVE_FAISS == 1);
}

TEST(VectorIndex, ExactSearchIsTheBruteForceTopK) {
  const auto vectors = unit_rows(60, 8, 1);
  const auto queries = unit_rows(7, 8, 2);
  const auto hits = exact_search(vectors, queries, 9);
  ASSERT_EQ(hits.ids.sizes(), torch::IntArrayRef({7, 9}));
  expect_hits_equal(hits, brute_force(vectors, queries, 9));
  // an indexed vector finds itself first, with cosine 1
  const auto self = exact_search(vectors, vectors.narrow(0, 10, 3), 1);
  EXPECT_EQ(row_of(self.ids.t(), 0), (std::vector<int64_t>{10, 11, 12}));
  EXPECT_NEAR(self.scores.min().item<double>(), 1.0, 1e-6);
}

// Rows 1, 3, 4 and 6 are the same vector, the best for the query [1, 0, 0, 0]; row 0 scores
// 0.8; the others are orthogonal to the query.
torch::Tensor with_ties() {
  auto vectors = torch::zeros({8, 4});
  vectors.select(1, 2).fill_(1.0f);
  for (const int64_t r : {6, 4, 1, 3}) vectors[r] = torch::tensor({1.0f, 0.0f, 0.0f, 0.0f});
  vectors[0] = torch::tensor({0.8f, 0.6f, 0.0f, 0.0f});
  return vectors;
}

TEST(VectorIndex, ExactSearchReturnsEveryTiedRowBeforeTheNextBest) {
  const auto hits = exact_search(with_ties(), torch::tensor({{1.0f, 0.0f, 0.0f, 0.0f}}), 5);
  const auto ids = row_of(hits.ids, 0);
  EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.begin() + 4), (std::set<int64_t>{1, 3, 4, 6}));
  EXPECT_EQ(ids[4], 0);
  EXPECT_TRUE(torch::allclose(hits.scores, torch::tensor({{1.0f, 1.0f, 1.0f, 1.0f, 0.8f}})))
      << hits.scores;
}

TEST(VectorIndex, ExactSearchBreaksTiesByTheLowerRow) {
  const auto hits = exact_search(with_ties(), torch::tensor({{1.0f, 0.0f, 0.0f, 0.0f}}), 5);
  EXPECT_EQ(row_of(hits.ids, 0), (std::vector<int64_t>{1, 3, 4, 6, 0})) << hits.ids;
  // k cuts through the tie: the lower rows are the ones kept
  const auto two = exact_search(with_ties(), torch::tensor({{1.0f, 0.0f, 0.0f, 0.0f}}), 2);
  EXPECT_EQ(row_of(two.ids, 0), (std::vector<int64_t>{1, 3})) << two.ids;
}

TEST(VectorIndex, ExactSearchOfKPastTheCollectionOrOfNothing) {
  const auto vectors = unit_rows(5, 3, 4);
  const auto queries = unit_rows(2, 3, 5);
  const auto all = exact_search(vectors, queries, 50);  // k > n: every row, best first
  ASSERT_EQ(all.ids.sizes(), torch::IntArrayRef({2, 5}));
  expect_hits_equal(all, brute_force(vectors, queries, 5));
  for (int64_t r = 0; r < 2; ++r) {
    const auto ids = row_of(all.ids, r);
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()).size(), 5u);
  }
  const auto none = exact_search(vectors, queries, 0);
  EXPECT_EQ(none.ids.sizes(), torch::IntArrayRef({2, 0}));
  EXPECT_EQ(none.ids.scalar_type(), torch::kLong);
  const auto empty = exact_search(torch::empty({0, 3}), queries, 4);
  EXPECT_EQ(empty.ids.sizes(), torch::IntArrayRef({2, 0}));
  EXPECT_EQ(empty.scores.sizes(), torch::IntArrayRef({2, 0}));
}

TEST(VectorIndex, ExactSearchRefusesAQueryOfAnotherWidth) {
  try {
    exact_search(unit_rows(5, 4, 6), unit_rows(1, 3, 7), 2);
    FAIL() << "a query of width 3 searched vectors of width 4";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the query's dimension (3) is not the index's (4)"),
              std::string::npos)
        << e.what();
  }
}

// A collection larger than one chunk (2^18 rows): the best rows of each chunk are merged.
TEST(VectorIndex, ExactSearchMergesTheChunksOfALargeCollection) {
  const int64_t n = (int64_t{1} << 18) + 40;
  auto vectors = torch::zeros({n, 2});
  vectors.select(1, 1).fill_(1.0f);  // everything orthogonal to the query [1, 0] ...
  const auto query = torch::tensor({{1.0f, 0.0f}});
  // ... but these, scored 0.9, 0.7 (twice, one in each chunk), 0.5, 0.3
  const std::vector<std::pair<int64_t, float>> planted = {
      {n - 3, 0.9f}, {7, 0.7f}, {n - 20, 0.7f}, {(int64_t{1} << 18) - 1, 0.5f}, {n - 1, 0.3f}};
  for (const auto& [row, score] : planted) {
    vectors[row] = torch::tensor({score, std::sqrt(1 - score * score)});
  }
  const auto hits = exact_search(vectors, query, 5);
  EXPECT_EQ(row_of(hits.ids, 0)[0], n - 3);
  const auto ids = row_of(hits.ids, 0);
  EXPECT_EQ(std::set<int64_t>(ids.begin() + 1, ids.begin() + 3), (std::set<int64_t>{7, n - 20}));
  EXPECT_EQ(ids[3], (int64_t{1} << 18) - 1);
  EXPECT_EQ(ids[4], n - 1);
  const std::vector<double> scores = {0.9, 0.7, 0.7, 0.5, 0.3};
  for (size_t j = 0; j < scores.size(); ++j) {
    EXPECT_NEAR(hits.scores[0][static_cast<int64_t>(j)].item<double>(), scores[j], 1e-6);
  }
}

TEST(VectorIndex, WithoutFaissOnlyTheExactSearch) {
  if (have_faiss()) GTEST_SKIP() << "this build has FAISS";
  try {
    AnnIndex::build(SearchBackend::hnsw, unit_rows(4, 2, 8), {});
    FAIL() << "an hnsw index was built without FAISS";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("built without FAISS"), std::string::npos) << e.what();
  }
  EXPECT_THROW(AnnIndex::load("/nonexistent", {}), std::invalid_argument);
}

class AnnIndexTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!have_faiss()) GTEST_SKIP() << "this build has no FAISS (XMODAL_WITH_FAISS=OFF)";
    vectors_ = unit_rows(200, 16, 11);
    queries_ = unit_rows(6, 16, 12);
  }
  torch::Tensor vectors_, queries_;
};

// 200 vectors: nlist = min(4 sqrt(200), 200 / 39) = 5 lists; nprobe 16 is clamped to the 5,
// so every list is visited and the search is exhaustive.
TEST_F(AnnIndexTest, AnExhaustiveIvfIsTheExactSearch) {
  const auto index = AnnIndex::build(SearchBackend::ivf, vectors_, {});
  EXPECT_EQ(index.size(), 200);
  EXPECT_EQ(index.dim(), 16);
  expect_hits_equal(index.search(queries_, 10), brute_force(vectors_, queries_, 10));
}

TEST_F(AnnIndexTest, IvfVisitsOnlyNprobeListsAndFillsTheRestWithMinusOne) {
  AnnOptions o;
  o.nlist = 5;
  o.nprobe = 1;
  auto index = AnnIndex::build(SearchBackend::ivf, vectors_, o);
  // k = every vector: one list of five holds fewer, the rest of the row is -1
  const auto one = index.search(queries_, 200);
  ASSERT_EQ(one.ids.sizes(), torch::IntArrayRef({6, 200}));
  for (int64_t r = 0; r < 6; ++r) {
    const int64_t found = one.ids[r].ge(0).sum().item<int64_t>();
    EXPECT_GT(found, 0);
    EXPECT_LT(found, 200);
    EXPECT_TRUE(one.ids[r].narrow(0, found, 200 - found).eq(-1).all().item<bool>());
  }
  // an indexed vector's own list is the one visited: it finds itself
  const auto self = index.search(vectors_.narrow(0, 0, 20), 1);
  EXPECT_TRUE(torch::equal(self.ids.squeeze(1), torch::arange(20, torch::kLong)));
  // set_options: every list again, every vector found, the exact order
  o.nprobe = 5;
  index.set_options(o);
  expect_hits_equal(index.search(queries_, 200), brute_force(vectors_, queries_, 200));
}

TEST_F(AnnIndexTest, HnswWithAWideSearchFindsTheExactNeighbours) {
  AnnOptions o;
  o.ef_search = 200;
  const auto index = AnnIndex::build(SearchBackend::hnsw, vectors_, o);
  EXPECT_EQ(index.size(), 200);
  const auto hits = index.search(queries_, 5);
  const auto exact = brute_force(vectors_, queries_, 5);
  for (int64_t r = 0; r < 6; ++r) {
    const auto ids = row_of(hits.ids, r);
    EXPECT_EQ(std::set<int64_t>(ids.begin(), ids.end()),
              std::set<int64_t>(exact.ids[r].begin(), exact.ids[r].end()))
        << "query " << r;
    EXPECT_NEAR(hits.scores[r][0].item<double>(), exact.scores[r][0], 1e-5);
  }
}

TEST_F(AnnIndexTest, KPastTheIndexOrZero) {
  const auto small = unit_rows(3, 16, 13);
  const auto index = AnnIndex::build(SearchBackend::hnsw, small, {});
  const auto hits = index.search(queries_, 10);
  ASSERT_EQ(hits.ids.sizes(), torch::IntArrayRef({6, 3}));
  expect_hits_equal(hits, brute_force(small, queries_, 3));
  EXPECT_EQ(index.search(queries_, 0).ids.sizes(), torch::IntArrayRef({6, 0}));
  try {
    index.search(unit_rows(1, 8, 14), 1);
    FAIL() << "a query of width 8 searched an index of width 16";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find("the query's dimension (8) is not the index's (16)"),
              std::string::npos)
        << e.what();
  }
  EXPECT_THROW(AnnIndex::build(SearchBackend::flat, small, {}), std::invalid_argument);
}

TEST_F(AnnIndexTest, SaveAndLoadRoundTrip) {
  TempDir dir;
  for (const auto backend : {SearchBackend::ivf, SearchBackend::hnsw}) {
    SCOPED_TRACE(backend_name(backend));
    AnnOptions o;
    o.ef_search = 200;
    const auto built = AnnIndex::build(backend, vectors_, o);
    const std::string path = (dir.path() / (backend_name(backend) + ".index")).string();
    built.save(path);
    const std::string bytes = built.serialize();
    EXPECT_EQ(io::read_file(path), bytes);
    EXPECT_EQ(built.bytes(), static_cast<int64_t>(bytes.size()));
    // 200 vectors of 16 floats are in it
    EXPECT_GT(built.bytes(), 200 * 16 * 4);
    const auto loaded = AnnIndex::load(path, o);
    EXPECT_EQ(loaded.size(), 200);
    EXPECT_EQ(loaded.dim(), 16);
    EXPECT_EQ(loaded.serialize(), bytes);
    const auto a = built.search(queries_, 7), b = loaded.search(queries_, 7);
    EXPECT_TRUE(torch::equal(a.ids, b.ids));
    EXPECT_TRUE(torch::equal(a.scores, b.scores));
  }
}

TEST_F(AnnIndexTest, UnreadableFilesAreRefusedNamingTheFile) {
  TempDir dir;
  const std::string bytes = AnnIndex::build(SearchBackend::hnsw, vectors_, {}).serialize();
  const std::string truncated = dir.write("truncated.index", bytes.substr(0, bytes.size() / 2));
  const std::string junk = dir.write("junk.index", "not a FAISS index at all");
  const std::string empty = dir.write("empty.index", "");
  const std::string missing = (dir.path() / "missing.index").string();
  for (const auto& path : {truncated, junk, empty, missing}) {
    const std::string error = error_of([&] { AnnIndex::load(path, {}); });
    EXPECT_EQ(error.rfind(path + ": not a readable FAISS index (", 0), 0u) << error;
  }
}

}  // namespace
}  // namespace xmodal::infer
