// Task retrieval (lib/xmodal/tasks/retrieval.cpp) on embeddings whose answers are known: the
// recalls against ranks counted by hand, the recall table, the contrastive loss against the
// InfoNCE formula written out here (soft targets for a repeated image or a shared caption, the
// ITM term, two processes in threads against one), the distillation term, and the evaluation's
// metrics, result file, table and predict answers.
#include "xmodal/tasks/retrieval.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <mutex>
#include <sstream>
#include <thread>

#include "../support/temp_dir.h"
#include "../support/tiny_model.h"
#include "xmodal/infer/json.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"

namespace xmodal::tasks {
namespace {

using nlohmann::json;
using xmodal::testing::TempDir;

const Task& retrieval() { return task(config::Task::retrieval); }

// 12 images, one text each (text t belongs to image t): text -> image ranks placed by hand,
// image -> text ranks counted here from the columns (ties against the image).
TEST(Retrieval, RecallAtOneFiveAndTenCountRanksByHand) {
  const int64_t n = 12;
  // text t scores image (t + j) % n at 1 - j / n: its true image (j = 0) first, for every t
  // but the ones below, moved down to rank r by swapping with the image at rank r.
  auto sim = torch::empty({n, n}, torch::kFloat64);
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t j = 0; j < n; ++j) sim[t][(t + j) % n] = 1.0 - static_cast<double>(j) / n;
  }
  // text 1 -> rank 3, text 2 -> rank 7, text 3 -> rank 11
  for (const auto& [t, r] : std::vector<std::pair<int64_t, int64_t>>{{1, 3}, {2, 7}, {3, 11}}) {
    const auto other = (t + r) % n;
    const auto a = sim[t][t].item<double>();
    sim[t][t] = sim[t][other].item<double>();
    sim[t][other] = a;
  }
  std::vector<int64_t> text_image(n);
  for (int64_t t = 0; t < n; ++t) text_image[t] = t;
  const auto m = recall_metrics(sim, text_image, "val_");
  // text -> image ranks: 0 for 9 texts, 3, 7, 11
  EXPECT_DOUBLE_EQ(m.at("val_t2i_r1"), 100.0 * 9 / 12);
  EXPECT_DOUBLE_EQ(m.at("val_t2i_r5"), 100.0 * 10 / 12);
  EXPECT_DOUBLE_EQ(m.at("val_t2i_r10"), 100.0 * 11 / 12);
  // image -> text: column i; image i's one text scores sim[i][i]; count the texts above it
  const auto simd = sim.contiguous();
  std::vector<int64_t> ranks;
  for (int64_t i = 0; i < n; ++i) {
    int64_t above = 0;
    for (int64_t t = 0; t < n; ++t) {
      above += t != i && simd[t][i].item<double>() >= simd[i][i].item<double>();
    }
    ranks.push_back(above);
  }
  const auto share = [&](int64_t k) {
    return 100.0 * std::count_if(ranks.begin(), ranks.end(), [&](int64_t r) { return r < k; }) / n;
  };
  EXPECT_DOUBLE_EQ(m.at("val_i2t_r1"), share(1));
  EXPECT_DOUBLE_EQ(m.at("val_i2t_r5"), share(5));
  EXPECT_DOUBLE_EQ(m.at("val_i2t_r10"), share(10));
  EXPECT_LT(share(1), 100.0);  // the swaps moved some image's text down too
  EXPECT_DOUBLE_EQ(m.at("val_rsum"), 100.0 * (9 + 10 + 11) / 12 + share(1) + share(5) + share(10));
  EXPECT_EQ(m.size(), 7u);  // six recalls and rsum, each with the prefix
  for (const auto& [name, value] : m) EXPECT_EQ(name.rfind("val_", 0), 0u) << name;
}

TEST(Retrieval, ImageToTextScoresOfTheirOwnRankThatDirection) {
  // 2 texts of 2 images; the similarity puts everything right, i2t_scores everything wrong
  const auto sim = torch::tensor({{0.9, 0.1}, {0.2, 0.8}});
  const auto wrong = torch::tensor({{0.1, 0.9}, {0.8, 0.2}});  // [images, texts]
  const auto m = recall_metrics(sim, {0, 1}, "itm_", wrong);
  EXPECT_DOUBLE_EQ(m.at("itm_t2i_r1"), 100.0);
  EXPECT_DOUBLE_EQ(m.at("itm_i2t_r1"), 0.0);
  EXPECT_DOUBLE_EQ(m.at("itm_i2t_r5"), 100.0);  // 2 candidates: found at rank 2
  EXPECT_DOUBLE_EQ(recall_metrics(sim, {0, 1}).at("i2t_r1"), 100.0);
  // one image per text, or it is refused
  EXPECT_THROW(recall_metrics(sim, {0}), c10::Error);
  EXPECT_THROW(content_recall_metrics(sim, {0, 1}, {5}), c10::Error);
}

TEST(Retrieval, AllTiedScoresFindNothing) {
  const auto sim = torch::zeros({3, 3});
  const auto m = recall_metrics(sim, {0, 1, 2});
  // ties count against the query: two wrong candidates tie with the true one -> rank 2
  EXPECT_DOUBLE_EQ(m.at("t2i_r1"), 0.0);
  EXPECT_DOUBLE_EQ(m.at("t2i_r5"), 100.0);
  EXPECT_DOUBLE_EQ(m.at("i2t_r1"), 0.0);
}

// Images 0 and 2 hold the same articles (content 5), image 1 others (6).
TEST(Retrieval, ContentRecallCountsAnyImageOfTheSameContent) {
  const auto sim = torch::tensor({{0.1, 0.2, 0.9},    // text of 0: image 2 first, same content
                                  {0.9, 0.3, 0.1},    // text of 1: 0 and then 1 (rank 1)
                                  {0.5, 0.6, 0.4}});  // text of 2: 1 first, then 0 (content)
  const auto m = content_recall_metrics(sim, {0, 1, 2}, {5, 6, 5});
  EXPECT_DOUBLE_EQ(m.at("content_t2i_r1"), 100.0 / 3);  // only text 0
  EXPECT_DOUBLE_EQ(m.at("content_t2i_r5"), 100.0);
  // image 0: texts of content 5 are 0 and 2, scored 0.1, 0.5; text 1 (0.9) above -> rank 1
  // image 1: its text 1 scores 0.3, text 2 (0.6) above -> rank 1
  // image 2: texts 0 and 2 score 0.9, 0.4 -> rank 0
  EXPECT_DOUBLE_EQ(m.at("content_i2t_r1"), 100.0 / 3);
  EXPECT_DOUBLE_EQ(m.at("content_i2t_r5"), 100.0);
  EXPECT_DOUBLE_EQ(m.at("content_rsum"), 100.0 / 3 * 2 + 100.0 * 4);
  // the plain recalls of the same matrix: text 0 misses too
  EXPECT_DOUBLE_EQ(recall_metrics(sim, {0, 1, 2}).at("t2i_r1"), 0.0);
}

TEST(Retrieval, TheTablePrintsTheRecallsUnderAPrefix) {
  const std::map<std::string, double> m = {
      {"x_i2t_r1", 12.5},   {"x_i2t_r5", 50},      {"x_i2t_r10", 100}, {"x_t2i_r1", 1.0 / 3},
      {"x_t2i_r5", 66.666}, {"x_t2i_r10", 99.999}, {"x_rsum", 330.5}};
  EXPECT_EQ(recall_table(m, "x_", "Title"),
            "| Title                            |    R@1 |    R@5 |   R@10 |\n"
            "|----------------------------------|--------|--------|--------|\n"
            "| image -> text                    |  12.50 |  50.00 | 100.00 |\n"
            "| text -> image                    |   0.33 |  66.67 | 100.00 |\n"
            "rsum 330.50\n");
  // a missing figure is printed as nan, not as 0
  EXPECT_NE(recall_table(m, "", "Title").find("|    nan |"), std::string::npos);
}

// ---- the loss ----------------------------------------------------------------------------

// A batch of `texts` pairs; sample b pairs text b with image row image_index[b] whose id is
// ids[b]; tokens[b] are the text's ids.
struct Pairs {
  models::ModelOutput out;
  data::Batch batch;
};

Pairs pairs(const torch::Tensor& images, const torch::Tensor& texts, double scale,
            const std::vector<int64_t>& image_index, const std::vector<int64_t>& ids,
            const std::vector<std::vector<int64_t>>& tokens) {
  Pairs p;
  p.out.outputs["image_embeds"] = images;
  p.out.outputs["text_embeds"] = texts;
  p.out.outputs["logit_scale"] = torch::tensor(scale);
  p.batch.image_index = torch::tensor(image_index, torch::kLong);
  p.batch.ids = ids;
  auto t = torch::empty({static_cast<int64_t>(tokens.size()), 3}, torch::kLong);
  for (size_t b = 0; b < tokens.size(); ++b) {
    for (size_t j = 0; j < 3; ++j) t[b][j] = tokens[b][j];
  }
  p.batch.input_ids = t;
  for (size_t b = 0; b < ids.size(); ++b) p.batch.indices.push_back(static_cast<int64_t>(b));
  return p;
}

torch::Tensor unit_rows(int64_t n, int64_t d, uint64_t seed) {
  torch::manual_seed(seed);
  const auto x = torch::randn({n, d}, torch::kFloat64);
  return x / x.norm(2, 1, true);
}

// The symmetric InfoNCE loss written out: logits z[i][j] = s <image of i, text j>; a pair j
// is a positive of i when it has the same image id or the same tokens; the target spreads
// evenly over the positives; loss = sum_i (CE_i(rows) + CE_i(columns)) / 2.
double info_nce(const Pairs& p) {
  const int64_t b = p.batch.size();
  const auto images = p.out.at("image_embeds").index_select(0, p.batch.image_index);
  const auto texts = p.out.at("text_embeds");
  const double s = p.out.at("logit_scale").item<double>();
  std::vector<std::vector<double>> z(b, std::vector<double>(b));
  for (int64_t i = 0; i < b; ++i) {
    for (int64_t j = 0; j < b; ++j) z[i][j] = s * (images[i] * texts[j]).sum().item<double>();
  }
  const auto positive = [&](int64_t i, int64_t j) {
    return p.batch.ids[i] == p.batch.ids[j] ||
           torch::equal(p.batch.input_ids[i], p.batch.input_ids[j]);
  };
  double total = 0;
  for (int64_t i = 0; i < b; ++i) {
    double positives = 0, row_lse = 0, col_lse = 0;
    for (int64_t j = 0; j < b; ++j) {
      positives += positive(i, j);
      row_lse += std::exp(z[i][j]);
      col_lse += std::exp(z[j][i]);
    }
    row_lse = std::log(row_lse);
    col_lse = std::log(col_lse);
    double i2t = 0, t2i = 0;
    for (int64_t j = 0; j < b; ++j) {
      if (!positive(i, j)) continue;
      i2t -= (z[i][j] - row_lse) / positives;
      t2i -= (z[j][i] - col_lse) / positives;
    }
    total += (i2t + t2i) / 2;
  }
  return total;
}

TEST(Retrieval, TheLossOfDistinctPairsIsClipsInfoNce) {
  const auto p = pairs(unit_rows(4, 6, 1), unit_rows(4, 6, 2), 10.0, {0, 1, 2, 3}, {10, 11, 12, 13},
                       {{5, 1, 0}, {6, 1, 0}, {7, 1, 0}, {8, 1, 0}});
  const auto loss = retrieval().loss(p.out, p.batch, torch::kCPU, {});
  EXPECT_NEAR(loss.total.item<double>(), info_nce(p), 1e-9);
  // the same as cross-entropy against the diagonal, both ways, summed over the pairs
  const auto z = torch::matmul(p.out.at("image_embeds"), p.out.at("text_embeds").t()) * 10.0;
  const auto labels = torch::arange(4, torch::kLong);
  namespace F = torch::nn::functional;
  const auto ce = [&](const torch::Tensor& x) {
    return F::cross_entropy(x, labels, F::CrossEntropyFuncOptions().reduction(torch::kSum));
  };
  EXPECT_NEAR(loss.total.item<double>(), ((ce(z) + ce(z.t())) / 2).item<double>(), 1e-9);
  // embeddings that agree cost less than random ones
  const auto aligned = pairs(unit_rows(4, 6, 1), unit_rows(4, 6, 1), 10.0, {0, 1, 2, 3},
                             {10, 11, 12, 13}, {{5, 1, 0}, {6, 1, 0}, {7, 1, 0}, {8, 1, 0}});
  EXPECT_LT(retrieval().loss(aligned.out, aligned.batch, torch::kCPU, {}).total.item<double>(),
            retrieval().loss(p.out, p.batch, torch::kCPU, {}).total.item<double>());
}

TEST(Retrieval, ARepeatedImageAndASharedCaptionAreSoftPositives) {
  // samples 0 and 1 pair two captions with image row 0 (id 7); samples 2 and 3 have distinct
  // images but the same caption tokens; sample 4 is alone
  const auto p = pairs(unit_rows(4, 5, 3), unit_rows(5, 5, 4), 5.0, {0, 0, 1, 2, 3},
                       {7, 7, 8, 9, 10}, {{4, 2, 0}, {5, 2, 0}, {6, 6, 1}, {6, 6, 1}, {9, 9, 9}});
  const auto loss = retrieval().loss(p.out, p.batch, torch::kCPU, {});
  EXPECT_NEAR(loss.total.item<double>(), info_nce(p), 1e-9);
  // not CLIP's loss, which would push the duplicates apart
  auto distinct = p;
  distinct.batch.ids = {1, 2, 3, 4, 5};
  distinct.batch.input_ids = torch::arange(15, torch::kLong).view({5, 3});
  const double clip =
      retrieval().loss(distinct.out, distinct.batch, torch::kCPU, {}).total.item<double>();
  EXPECT_NEAR(clip, info_nce(distinct), 1e-9);
  EXPECT_GT(std::abs(clip - loss.total.item<double>()), 1e-3);
}

TEST(Retrieval, TheItmTermIsAddedWithItsWeight) {
  auto p =
      pairs(unit_rows(2, 4, 5), unit_rows(2, 4, 6), 3.0, {0, 1}, {1, 2}, {{1, 0, 0}, {2, 0, 0}});
  // 3B rows: the 2 pairs (match), then 4 negatives
  p.out.outputs["itm_logits"] = torch::tensor(
      {{0.1, 0.7}, {0.5, -0.2}, {1.0, 0.0}, {0.3, 0.3}, {-0.4, 0.9}, {2.0, 1.0}}, torch::kFloat64);
  double itm = 0;
  for (int64_t r = 0; r < 6; ++r) {
    const double a = p.out.outputs["itm_logits"][r][0].item<double>(),
                 b = p.out.outputs["itm_logits"][r][1].item<double>();
    const double chosen = r < 2 ? b : a;
    itm -= chosen - std::log(std::exp(a) + std::exp(b));
  }
  itm *= 2.0 / 6.0;  // the mean over the rows, times the batch's samples
  models::LossWeights w;
  w.itm = 0.25;
  EXPECT_NEAR(retrieval().loss(p.out, p.batch, torch::kCPU, w).total.item<double>(),
              info_nce(p) + 0.25 * itm, 1e-9);
  w.itm = 0;
  EXPECT_NEAR(retrieval().loss(p.out, p.batch, torch::kCPU, w).total.item<double>(), info_nce(p),
              1e-9);
}

// Two processes as two threads: all_gather concatenates what both give, in rank order.
class ThreadGroup {
 public:
  explicit ThreadGroup(int size) : slots_(static_cast<size_t>(size)) {}
  torch::Tensor all_gather(int rank, const torch::Tensor& t) {
    std::unique_lock<std::mutex> lock(mutex_);
    slots_[static_cast<size_t>(rank)] = t.detach().clone();
    const int64_t round = round_;
    if (++arrived_ == static_cast<int>(slots_.size())) {
      gathered_ = torch::cat(slots_);
      arrived_ = 0;
      ++round_;
      done_.notify_all();
    } else {
      done_.wait(lock, [&] { return round_ != round; });
    }
    return gathered_;
  }
  int size() const { return static_cast<int>(slots_.size()); }

 private:
  std::mutex mutex_;
  std::condition_variable done_;
  std::vector<torch::Tensor> slots_;
  torch::Tensor gathered_;
  int arrived_ = 0;
  int64_t round_ = 0;
};

class ThreadCollective : public Collective {
 public:
  ThreadCollective(ThreadGroup& group, int rank) : group_(group), rank_(rank) {}
  int rank() const override { return rank_; }
  int world_size() const override { return group_.size(); }
  torch::Tensor all_gather(const torch::Tensor& t) override { return group_.all_gather(rank_, t); }

 private:
  ThreadGroup& group_;
  int rank_;
};

TEST(Retrieval, TwoProcessesGiveTheLossAndGradientsOfTheGlobalBatch) {
  // 6 pairs, a repeated image id and a shared caption among them, split 4 + 2
  const auto images = unit_rows(6, 5, 7), texts = unit_rows(6, 5, 8);
  const std::vector<int64_t> ids = {1, 2, 1, 3, 4, 5};
  const std::vector<std::vector<int64_t>> tokens = {{1, 1, 0}, {2, 2, 0}, {3, 3, 0},
                                                    {4, 4, 0}, {5, 5, 0}, {2, 2, 0}};
  auto whole = pairs(images.clone().requires_grad_(true), texts.clone().requires_grad_(true), 4.0,
                     {0, 1, 2, 3, 4, 5}, ids, tokens);
  const auto global = retrieval().loss(whole.out, whole.batch, torch::kCPU, {}).total;
  global.backward();

  ThreadGroup group(2);
  const int64_t starts[] = {0, 4}, sizes[] = {4, 2};
  std::vector<Pairs> part(2);
  std::vector<double> values(2);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r) {
    const int64_t s = starts[r], n = sizes[r];
    std::vector<int64_t> index(n);
    for (int64_t i = 0; i < n; ++i) index[i] = i;
    part[r] = pairs(images.narrow(0, s, n).clone().requires_grad_(true),
                    texts.narrow(0, s, n).clone().requires_grad_(true), 4.0, index,
                    std::vector<int64_t>(ids.begin() + s, ids.begin() + s + n),
                    std::vector<std::vector<int64_t>>(tokens.begin() + s, tokens.begin() + s + n));
  }
  for (int r = 0; r < 2; ++r) {
    threads.emplace_back([&, r] {
      ThreadCollective c(group, r);
      const auto loss = retrieval().loss(part[r].out, part[r].batch, torch::kCPU, {}, &c).total;
      values[r] = loss.item<double>();
      loss.backward();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_NEAR(values[0] + values[1], global.item<double>(), 1e-9);
  EXPECT_GT(std::abs(values[0] - global.item<double>()), 1e-6);  // a share, not the whole
  for (int r = 0; r < 2; ++r) {
    EXPECT_TRUE(torch::allclose(
        part[r].out.outputs["image_embeds"].grad(),
        whole.out.outputs["image_embeds"].grad().narrow(0, starts[r], sizes[r]), 1e-7, 1e-10))
        << "rank " << r;
    EXPECT_TRUE(torch::allclose(
        part[r].out.outputs["text_embeds"].grad(),
        whole.out.outputs["text_embeds"].grad().narrow(0, starts[r], sizes[r]), 1e-7, 1e-10))
        << "rank " << r;
  }
}

// KL(p || q) of two rows of logits divided by T.
double kl(const std::vector<double>& teacher, const std::vector<double>& student, double t) {
  const auto softmax = [&](const std::vector<double>& x) {
    double sum = 0;
    std::vector<double> e;
    for (double v : x) sum += std::exp(v / t);
    for (double v : x) e.push_back(std::exp(v / t) / sum);
    return e;
  };
  const auto p = softmax(teacher), q = softmax(student);
  double d = 0;
  for (size_t i = 0; i < p.size(); ++i) d += p[i] * std::log(p[i] / q[i]);
  return d;
}

TEST(Retrieval, DistillationIsTheKlOfBothSimilarityDirections) {
  // 3 texts, 2 distinct images
  models::ModelOutput student, teacher;
  student.outputs["text_embeds"] = unit_rows(3, 4, 9);
  student.outputs["image_embeds"] = unit_rows(2, 4, 10);
  student.outputs["logit_scale"] = torch::tensor(8.0, torch::kFloat64);
  teacher.outputs["text_embeds"] = unit_rows(3, 4, 11);
  teacher.outputs["image_embeds"] = unit_rows(2, 4, 12);
  teacher.outputs["logit_scale"] = torch::tensor(20.0, torch::kFloat64);
  const double t = 2.0;
  const auto logits = [](const models::ModelOutput& o) {
    std::vector<std::vector<double>> z(3, std::vector<double>(2));
    for (int64_t i = 0; i < 3; ++i) {
      for (int64_t j = 0; j < 2; ++j) {
        z[i][j] = o.at("logit_scale").item<double>() *
                  (o.at("text_embeds")[i] * o.at("image_embeds")[j]).sum().item<double>();
      }
    }
    return z;
  };
  const auto zs = logits(student), zt = logits(teacher);
  double rows = 0, columns = 0;
  for (int i = 0; i < 3; ++i) rows += kl(zt[i], zs[i], t);
  for (int j = 0; j < 2; ++j) {
    columns += kl({zt[0][j], zt[1][j], zt[2][j]}, {zs[0][j], zs[1][j], zs[2][j]}, t);
  }
  const double expected = t * t * (rows + columns * 3.0 / 2.0) / 2;
  EXPECT_NEAR(retrieval().distill_loss(student, teacher, t).item<double>(), expected, 1e-9);
  EXPECT_NEAR(retrieval().distill_loss(student, student, t).item<double>(), 0.0, 1e-12);
}

// ---- evaluation and predict ----------------------------------------------------------------

data::Example example(int64_t id, const std::string& text, std::vector<int> counts) {
  data::Example e;
  e.id = id;
  e.texts = {text};
  auto a = std::make_shared<RetrievalAnnotation>();
  a->content = std::move(counts);
  e.annotation = std::move(a);
  return e;
}

std::vector<json> read_json_lines(const std::string& path) {
  std::vector<json> out;
  std::istringstream in(io::read_file(path));
  for (std::string line; std::getline(in, line);) out.push_back(json::parse(line));
  return out;
}

TEST(Retrieval, TheEvaluationScoresItsRowsAsRecallMetricsDo) {
  // 5 texts of 3 images (ids 100, 200, 300) in two batches; image 100 appears in both; images
  // 100 and 300 hold the same articles; "a bag." describes 100 and 200
  data::TaskData d;
  d.task = config::Task::retrieval;
  d.examples = {example(100, "a bag.", {1, 0}), example(200, "a bag.", {0, 1}),
                example(100, "a bag on the left.", {1, 0}), example(300, "a coat.", {1, 0}),
                example(200, "a shirt.", {0, 1})};
  const auto image_rows = unit_rows(3, 4, 13);  // rows of 100, 200, 300
  const auto text_rows = unit_rows(5, 4, 14);
  auto e = retrieval().evaluation(d, {}, config::VqaProtocol::official);
  EXPECT_TRUE(e->metrics().empty());
  EXPECT_EQ(e->table({}), "nothing to retrieve\n");

  const auto add = [&](std::vector<int64_t> rows, std::vector<int64_t> image_of_row) {
    // the batch's distinct images, in first-appearance order
    std::vector<int64_t> distinct, index;
    for (const int64_t img : image_of_row) {
      auto it = std::find(distinct.begin(), distinct.end(), img);
      if (it == distinct.end()) {
        distinct.push_back(img);
        it = distinct.end() - 1;
      }
      index.push_back(it - distinct.begin());
    }
    models::ModelOutput out;
    out.outputs["image_embeds"] =
        image_rows.index_select(0, torch::tensor(distinct, torch::kLong)).to(torch::kFloat32);
    out.outputs["text_embeds"] =
        text_rows.index_select(0, torch::tensor(rows, torch::kLong)).to(torch::kFloat32);
    data::Batch b;
    b.image_index = torch::tensor(index, torch::kLong);
    for (const int64_t r : rows) {
      b.ids.push_back(d.examples[r].id);
      b.indices.push_back(r);
    }
    e->add(out, b);
  };
  add({0, 1, 2}, {0, 1, 0});
  add({3, 4}, {2, 1});
  EXPECT_EQ(e->rows(), 5);

  const auto sim =
      torch::matmul(text_rows.to(torch::kFloat32), image_rows.to(torch::kFloat32).t());  // [5, 3]
  const std::vector<int64_t> text_image = {0, 1, 0, 2, 1};
  auto expected = recall_metrics(sim, text_image);
  for (const auto& [k, v] : content_recall_metrics(sim, text_image, {0, 1, 0})) expected[k] = v;
  const auto m = e->metrics();
  ASSERT_EQ(m.size(), expected.size());
  for (const auto& [k, v] : expected) EXPECT_NEAR(m.at(k), v, 1e-9) << k;

  TempDir dir;
  json summary = json::object();
  e->write(dir.path().string(), summary);
  EXPECT_EQ(summary["images"], 3);
  EXPECT_EQ(summary["texts"], 5);
  EXPECT_EQ(summary["texts_shared_by_images"], 2);  // the two "a bag." rows
  const auto lines = read_json_lines((dir.path() / "predictions.jsonl").string());
  ASSERT_EQ(lines.size(), 5u);
  const std::vector<int64_t> ids = {100, 200, 300};
  for (int64_t t = 0; t < 5; ++t) {
    EXPECT_EQ(lines[t]["text"], d.examples[t].texts[0]);
    EXPECT_EQ(lines[t]["image_id"], d.examples[t].id);
    const auto order = std::get<1>(sim[t].sort(0, true));
    std::vector<int64_t> top;
    for (int64_t j = 0; j < 3; ++j) top.push_back(ids[order[j].item<int64_t>()]);
    EXPECT_EQ(lines[t]["top_images"].get<std::vector<int64_t>>(), top) << t;
  }
  auto with_loss = m;
  with_loss["loss"] = 1.25;
  const auto table = e->table(with_loss);
  EXPECT_NE(table.find(recall_table(m, "", "Recall (%)")), std::string::npos) << table;
  EXPECT_NE(table.find(recall_table(m, "content_", "Recall, same content (%)")), std::string::npos)
      << table;
  EXPECT_NE(table.find("(3 images, 5 texts; 2 texts describe more than one image; loss 1.2500)"),
            std::string::npos)
      << table;
}

TEST(Retrieval, ReRankingNeedsAnItmHead) {
  data::TaskData d;
  d.task = config::Task::retrieval;
  d.examples = {example(1, "a bag.", {})};
  auto e = retrieval().evaluation(d, {}, config::VqaProtocol::official);
  // a real retrieval model without train.itm
  auto c = xmodal::testing::tiny_model_config();
  c.task = config::Task::retrieval;
  auto model = tasks::build_model(c, {32, 0, 0});
  ASSERT_FALSE(models::dual_encoder(*model)->itm_head);
  models::ModelOutput out;
  out.outputs["image_embeds"] = torch::ones({1, 2}) / std::sqrt(2.0f);
  out.outputs["text_embeds"] = out.outputs["image_embeds"].clone();
  data::Batch b;
  b.ids = {1};
  b.indices = {0};
  b.image_index = torch::zeros({1}, torch::kLong);
  e->add(out, b);
  // no counts: no content recalls
  const auto m = e->metrics();
  EXPECT_EQ(m.count("content_rsum"), 0u);
  EXPECT_DOUBLE_EQ(m.at("t2i_r1"), 100.0);
  try {
    e->rerank(*model, torch::kCPU, 4);
    FAIL() << "re-ranked without an ITM head";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("no ITM head"), std::string::npos) << error.what();
  }
}

// BLIP's protocol on a real tiny model with an ITM head: each query's top k candidates by
// cosine get ITM logit (match) + cosine, the others -100; the recalls of those scores, by hand.
TEST(Retrieval, ReRankingScoresTheTopKByTheMatchingHead) {
  auto c = xmodal::testing::tiny_model_config();
  c.task = config::Task::retrieval;
  c.train.itm = 1.0;
  torch::manual_seed(21);
  auto model = tasks::build_model(c, {32, 0, 0});
  ASSERT_TRUE(models::dual_encoder(*model)->itm_head);
  model->eval();
  torch::NoGradGuard no_grad;
  // 3 images, 5 texts (the last two padded): texts 0, 3 of image 0; 1, 4 of image 1; 2 of 2
  const auto images = torch::rand({3, 3, 16, 16});
  const auto ids = torch::randint(1, 32, {5, 6}, torch::kLong);
  auto mask = torch::ones({5, 6}, torch::kLong);
  mask[3].narrow(0, 4, 2).zero_();
  mask[4].narrow(0, 2, 4).zero_();
  const std::vector<int64_t> text_image = {0, 1, 2, 0, 1};
  const auto index = torch::tensor(text_image, torch::kLong);
  const auto out = model->forward(images, ids, mask, {}, index);
  ASSERT_TRUE(out.get("image_tokens").defined() && out.get("text_tokens").defined());

  data::TaskData d;
  d.task = config::Task::retrieval;
  for (int64_t t = 0; t < 5; ++t) {
    d.examples.push_back(example(100 + text_image[t], "text " + std::to_string(t), {}));
  }
  data::Batch b;
  b.image_index = index;
  b.attention_mask = mask;
  for (int64_t t = 0; t < 5; ++t) {
    b.ids.push_back(100 + text_image[t]);
    b.indices.push_back(t);
  }
  auto e = retrieval().evaluation(d, {}, config::VqaProtocol::official);
  e->add(out, b);
  const int k = 2;
  e->rerank(*model, torch::kCPU, k);
  const auto m = e->metrics();

  const auto sim = torch::matmul(out.at("text_embeds"), out.at("image_embeds").t());  // [5, 3]
  const auto padding = mask.eq(0);
  const auto match = [&](int64_t t, int64_t i) {  // ITM logit of class 1 for (text t, image i)
    return models::itm_logits(*model, out.at("image_tokens").narrow(0, i, 1),
                              out.at("text_tokens").narrow(0, t, 1), padding.narrow(0, t, 1))[0][1]
        .item<double>();
  };
  auto t2i = torch::full({5, 3}, -100.0, torch::kFloat64);
  auto i2t = torch::full({3, 5}, -100.0, torch::kFloat64);
  for (int64_t t = 0; t < 5; ++t) {
    const auto top = std::get<1>(sim[t].topk(k));
    for (int64_t j = 0; j < k; ++j) {
      const int64_t i = top[j].item<int64_t>();
      t2i[t][i] = match(t, i) + sim[t][i].item<double>();
    }
  }
  for (int64_t i = 0; i < 3; ++i) {
    const auto top = std::get<1>(sim.select(1, i).topk(k));
    for (int64_t j = 0; j < k; ++j) {
      const int64_t t = top[j].item<int64_t>();
      i2t[i][t] = match(t, i) + sim[t][i].item<double>();
    }
  }
  const auto expected = recall_metrics(t2i, text_image, "itm_", i2t);
  for (const auto& [name, value] : expected) {
    ASSERT_TRUE(m.count(name)) << name;
    EXPECT_DOUBLE_EQ(m.at(name), value) << name;
  }
  // the contrastive recalls are still there, unchanged
  for (const auto& [name, value] : recall_metrics(sim, text_image)) {
    EXPECT_DOUBLE_EQ(m.at(name), value) << name;
  }
  EXPECT_NE(e->table(m).find(recall_table(m, "itm_", "Recall, ITM re-ranked top 2 (%)")),
            std::string::npos)
      << e->table(m);
}

TEST(Retrieval, PredictGivesEachPairsCosine) {
  models::ModelOutput out;
  out.outputs["image_embeds"] = torch::tensor({{1.0f, 0.0f}, {0.6f, 0.8f}});
  out.outputs["text_embeds"] = torch::tensor({{0.6f, 0.8f}, {0.0f, 1.0f}});
  const json answer = infer::to_json(retrieval().answer(out, 1, {}, 3));
  EXPECT_NEAR(answer["similarity"].get<double>(), 0.8, 1e-6);
  EXPECT_TRUE(torch::allclose(retrieval().scores(out), torch::tensor({{0.6f}, {0.8f}})));
  // one image for every text
  out.outputs["image_embeds"] = torch::tensor({{0.0f, 1.0f}});
  EXPECT_TRUE(torch::allclose(retrieval().scores(out), torch::tensor({{0.8f}, {1.0f}})));
  // a non-finite similarity is null
  out.outputs["text_embeds"][0][0] = std::nanf("");
  const json broken = infer::to_json(retrieval().answer(out, 0, {}, 3));
  EXPECT_TRUE(broken["similarity"].is_null()) << broken.dump();
  EXPECT_EQ(retrieval().id(), config::Task::retrieval);
}

}  // namespace
}  // namespace xmodal::tasks
