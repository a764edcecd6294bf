// Data-parallel training: the loader's shards, the environment, and the real binary on 2
// processes over Gloo (loopback) against 1 process on the combined batch.
#include "xmodal/train/distributed.h"

#include <fcntl.h>
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <thread>

#include "../support/process.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/scenes.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/task.h"
#include "xmodal/tasks/vqa.h"
#include "xmodal/text/tokenizer.h"
#include "xmodal_test_paths.h"

namespace xmodal::train {
using namespace xmodal::checkpoint;  // NOLINT(build/namespaces)
namespace {

namespace fs = std::filesystem;
using xmodal::testing::read_text;
using xmodal::testing::run_xmodal;
using xmodal::testing::TempDir;

// Sets environment variables for one scope.
class Env {
 public:
  Env(std::initializer_list<std::pair<const char*, const char*>> vars) {
    for (const auto& [k, v] : vars) {
      names_.push_back(k);
      ::setenv(k, v, 1);
    }
  }
  ~Env() {
    for (const auto* k : names_) ::unsetenv(k);
  }

 private:
  std::vector<const char*> names_;
};

TEST(Distributed, EnvironmentLikeTorchrun) {
  {
    Env env(
        {{"RANK", "1"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "1234"}});
    const auto d = dist_env_from_environment();
    EXPECT_EQ(d.rank, 1);
    EXPECT_EQ(d.world_size, 2);
    EXPECT_EQ(d.local_rank, 1);
    EXPECT_EQ(d.master_addr, "10.0.0.1");
    EXPECT_EQ(d.master_port, 1234);
    EXPECT_TRUE(d.enabled());
  }
  EXPECT_FALSE(dist_env_from_environment().enabled());
  {
    Env env({{"RANK", "2"}, {"WORLD_SIZE", "2"}});
    try {
      dist_env_from_environment();
      FAIL();
    } catch (const std::invalid_argument& e) {
      EXPECT_STREQ(e.what(), "RANK=2 is not below WORLD_SIZE=2");
    }
  }
  Env env({{"WORLD_SIZE", "two"}});
  EXPECT_THROW(dist_env_from_environment(), std::invalid_argument);
}

// A tiny scenes set shared by the tests below.
class DistributedData : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir();
    // 10 training scenes: 60 questions
    data::build_scenes(xmodal::testing::tiny_scenes(dir_->path() / "scenes", 10, 4, 2, 3));
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static std::string root() { return (dir_->path() / "scenes").string(); }
  static TempDir* dir_;
};
TempDir* DistributedData::dir_ = nullptr;

TEST_F(DistributedData, RankShardsTogetherAreTheOneProcessBatches) {
  auto c = config::parse_config("data: {root: " + root() + ", image_size: 32}\n");
  auto split = std::make_shared<data::TaskData>(tasks::load_split(c, "train"));
  auto tokenizer = std::make_shared<text::WordTokenizer>(text::WordTokenizer::build({"a"}));
  for (const int batch : {4, 7}) {  // 60 questions: 8 global batches of 8; 5 of 14 (the last 4)
    auto options = data::loader_options(c, true);
    options.workers = 0;
    options.batch_size = 2 * batch;
    data::Loader one(split, tokenizer, options);
    options.batch_size = batch;
    options.world_size = 2;
    options.rank = 0;
    data::Loader r0(split, tokenizer, options);
    options.rank = 1;
    data::Loader r1(split, tokenizer, options);
    ASSERT_EQ(r0.batches_per_epoch(), one.batches_per_epoch());
    ASSERT_EQ(r1.batches_per_epoch(), one.batches_per_epoch());
    for (int64_t k = 0; k < one.batches_per_epoch(); ++k) {
      const auto a = r0.make_batch(1, k), b = r1.make_batch(1, k), all = one.make_batch(1, k);
      EXPECT_EQ(a.size(), b.size()) << k;  // equal shares, also of the last batch
      EXPECT_TRUE(torch::equal(torch::cat({a.input_ids, b.input_ids}), all.input_ids)) << k;
      const auto& scores = tasks::kVqaScores;
      EXPECT_TRUE(
          torch::equal(torch::cat({a.target(scores), b.target(scores)}), all.target(scores)))
          << k;
    }
  }
  // 60 questions on 7 processes: padded to 63 by wrapping around, 9 per process.
  auto options = data::loader_options(c, true);
  options.workers = 0;
  options.batch_size = 9;
  options.world_size = 7;
  options.rank = 6;
  data::Loader last(split, tokenizer, options);
  EXPECT_EQ(last.batches_per_epoch(), 1);
  EXPECT_EQ(last.make_batch(0, 0).size(), 9);
}

// The tiny VQA model of the trainer tests (patch stem: no BatchNorm, whose statistics would be
// per process), dropout 0, one thread. adam_eps 1e-6: the attention key bias has an exactly-zero
// true gradient, so both runs see only rounding noise (~1e-10) there, in different order, and
// AdamW with eps 1e-8 would blow that noise up to +-lr steps of random sign.
std::string tiny_config(const TempDir& dir, const std::string& root) {
  return dir.write("tiny.yaml",
                   "task: vqa\n"
                   "run: {threads: 1, seed: 7}\n"
                   "data: {root: " +
                       root +
                       ", image_size: 32, workers: 1}\n"
                       "model:\n"
                       "  vision: {patch_size: 16, hidden: 16, layers: 1, heads: 2, mlp_dim: 32}\n"
                       "  text: {hidden: 16, layers: 1, heads: 2, intermediate: 32}\n"
                       "  fusion: {hidden: 16, layers: 1, heads: 2, mlp_dim: 32}\n"
                       "  head: {hidden: 16}\n"
                       "train: {lr: 0.001, adam_eps: 1.0e-6, max_steps: 4, eval_every: 4, "
                       "checkpoint_every: 4, log_every: 1}\n"
                       "dist: {timeout_s: 30}\n");
}

// Trains `config` on 2 processes with batch 4 (RUN_DIR two) and on 1 with batch 8 (one): the
// two last checkpoints, or nullopt after a failed run (reported).
std::optional<std::pair<CheckpointContent, CheckpointContent>> two_and_one(
    const TempDir& dir, const std::string& config) {
  const auto two = (dir.path() / "two").string(), one = (dir.path() / "one").string();
  for (const auto& [run_dir, args] :
       {std::pair{two, std::vector<std::string>{"--nproc", "2", "--set", "train.batch_size=4"}},
        std::pair{one, std::vector<std::string>{"--set", "train.batch_size=8"}}}) {
    std::vector<std::string> all = {"train", config, "--run-dir", run_dir};
    all.insert(all.end(), args.begin(), args.end());
    if (run_xmodal(all, run_dir + ".log") != 0) {
      ADD_FAILURE() << read_text(run_dir + ".log");
      return std::nullopt;
    }
  }
  return std::make_pair(load_checkpoint(two + "/last", {false}),
                        load_checkpoint(one + "/last", {false}));
}

TEST_F(DistributedData, TwoProcessesEqualOneProcessOnTheCombinedBatch) {
  TempDir dir;
  const auto config = tiny_config(dir, root());
  const auto runs = two_and_one(dir, config);
  ASSERT_TRUE(runs);
  const auto& [a, b] = *runs;
  const auto two = (dir.path() / "two").string();
  EXPECT_EQ(a.state.step, 4);
  EXPECT_EQ(a.state.world_size, 2);
  EXPECT_EQ(a.state.samples_seen, b.state.samples_seen);  // 4 steps x 8 questions
  ASSERT_EQ(a.model.size(), b.model.size());
  double worst = 0;
  for (const auto& [name, t] : a.model) {
    const auto diff = (t.to(torch::kFloat64) - b.model.at(name).to(torch::kFloat64)).abs().max();
    worst = std::max(worst, diff.item<double>());
    EXPECT_TRUE(torch::allclose(t, b.model.at(name), /*rtol=*/1e-5, /*atol=*/1e-6)) << name;
  }
  std::printf("[dist] 2 processes vs 1 on the combined batch: max abs weight difference %.3g\n",
              worst);
  // Stopped after 2 steps and resumed on 2 processes: bit-identical to the uninterrupted run.
  const auto part = (dir.path() / "part").string();
  ASSERT_EQ(run_xmodal({"train", config, "--nproc", "2", "--run-dir", part, "--set",
                        "train.batch_size=4", "--stop-after-steps", "2"},
                       (dir.path() / "part.log").string()),
            0)
      << read_text((dir.path() / "part.log").string());
  ASSERT_EQ(
      run_xmodal({"train", "--resume", part, "--nproc", "2"}, (dir.path() / "part2.log").string()),
      0)
      << read_text((dir.path() / "part2.log").string());
  const auto resumed = load_checkpoint(part + "/last", {false});
  EXPECT_EQ(resumed.state.step, 4);
  for (const auto& [name, t] : a.model) {
    EXPECT_TRUE(torch::equal(t, resumed.model.at(name))) << name;
  }
  // Only rank 0 wrote the run directory; resuming with another process count is refused.
  EXPECT_EQ(read_text(two + "/train.log").find("rank 1"), std::string::npos);
  EXPECT_EQ(run_xmodal({"train", "--resume", two}, (dir.path() / "resume.log").string()), 2);
  EXPECT_NE(read_text((dir.path() / "resume.log").string())
                .find("resume it with the same number (--nproc 2)"),
            std::string::npos)
      << read_text((dir.path() / "resume.log").string());
}

// The contrastive loss sees the global batch: each process gathers the embeddings of the others
// (without gradients) and its own rows carry theirs, so 2 processes with batch 4 train like one
// with batch 8 (a per-process loss would see 4 negatives, not 8, and drift apart).
TEST_F(DistributedData, RetrievalTwoProcessesEqualOneProcessOnTheCombinedBatch) {
  TempDir dir;
  // adam_eps 1e-4: the key bias's rounding noise is larger here than in the VQA model (the
  // contrastive loss over the gathered batch); with 1e-6 it moved that bias by 1.7e-6 on an AMD
  // EPYC Zen 3 (OpenBLAS's Zen kernels), past the tolerance, while every real gradient is far
  // above 1e-4 after Adam's normalisation.
  const auto config = dir.write(
      "retrieval.yaml",
      "task: retrieval\n"
      "run: {threads: 1, seed: 7}\n"
      "data: {root: " +
          root() +
          ", image_size: 32, workers: 1, max_text_len: 48}\n"
          "model:\n"
          "  vision: {patch_size: 16, hidden: 16, layers: 1, heads: 2, mlp_dim: 32}\n"
          "  text: {hidden: 16, layers: 1, heads: 2, intermediate: 32, max_position: 48}\n"
          "  retrieval: {embed_dim: 8}\n"
          "train: {lr: 0.001, adam_eps: 1.0e-4, max_steps: 4, eval_every: 4, "
          "checkpoint_every: 4, log_every: 1, early_stopping: {metric: rsum, mode: max}}\n"
          "dist: {timeout_s: 30}\n");
  const auto runs = two_and_one(dir, config);
  ASSERT_TRUE(runs);
  const auto& [a, b] = *runs;
  EXPECT_EQ(a.state.samples_seen, b.state.samples_seen);
  ASSERT_EQ(a.model.size(), b.model.size());
  double worst = 0, moved = 0;
  for (const auto& [name, t] : a.model) {
    worst = std::max(
        worst,
        (t.to(torch::kFloat64) - b.model.at(name).to(torch::kFloat64)).abs().max().item<double>());
    EXPECT_TRUE(torch::allclose(t, b.model.at(name), /*rtol=*/1e-5, /*atol=*/1e-6)) << name;
  }
  // and the runs did train: the temperature moved from CLIP's initial log(1 / 0.07)
  moved = std::abs(a.model.at("logit_scale").item<double>() - std::log(1 / 0.07));
  EXPECT_GT(moved, 1e-4);
  std::printf("[dist] retrieval, 2 processes vs 1: max abs weight difference %.3g\n", worst);
}

TEST_F(DistributedData, AKilledProcessMakesTheOtherFailWithinTheTimeout) {
  TempDir dir;
  const auto config = tiny_config(dir, root());
  const auto run = (dir.path() / "run").string();
  const std::string port = "MASTER_PORT=" + std::to_string(20000 + ::getpid() % 20000);
  const std::vector<std::string> common = {"WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", port};
  pid_t rank0 = 0, rank1 = 0;
  const std::vector<std::string> args = {"train",     config,
                                         "--run-dir", run,
                                         "--set",     "train.max_steps=100000",
                                         "--set",     "dist.timeout_s=10"};
  auto env0 = common, env1 = common;
  env0.push_back("RANK=0");
  env1.push_back("RANK=1");
  const auto log0 = (dir.path() / "rank0.log").string();
  run_xmodal(args, log0, env0, &rank0);
  run_xmodal(args, (dir.path() / "rank1.log").string(), env1, &rank1);
  // Wait until they train together (rank 0 logs every step), then kill rank 1.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (read_text(log0).find("step 2/") == std::string::npos &&
         std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  ASSERT_NE(read_text(log0).find("step 2/"), std::string::npos) << read_text(log0);
  ::kill(rank1, SIGKILL);
  ::waitpid(rank1, nullptr, 0);
  const auto killed = std::chrono::steady_clock::now();
  int status = 0;
  pid_t done = 0;
  while ((done = ::waitpid(rank0, &status, WNOHANG)) == 0 &&
         std::chrono::steady_clock::now() - killed < std::chrono::seconds(40)) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  if (done == 0) {
    ::kill(rank0, SIGKILL);
    ::waitpid(rank0, nullptr, 0);
    FAIL() << "rank 0 still running 40 s after rank 1 died:\n" << read_text(log0);
  }
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - killed).count();
  EXPECT_LE(seconds, 10 + 5);  // dist.timeout_s plus start-up slack
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 1) << read_text(log0);
  EXPECT_NE(read_text(log0).find("[dist] rank 0"), std::string::npos) << read_text(log0);
  std::printf("[dist] rank 0 failed %.1f s after rank 1 was killed\n", seconds);
}

}  // namespace
}  // namespace xmodal::train
