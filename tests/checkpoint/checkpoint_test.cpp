// The checkpoint format and discovery (lib/xmodal/checkpoint/checkpoint.h): round trips,
// corruption of every kind, untrusted state.json numbers, killed writers, pruning, pointers and
// the RNG state. The artifacts (config, tokenizer, classes) are covered with training in
// tests/train/trainer_test.cpp.
#include "xmodal/checkpoint/checkpoint.h"

#include <gtest/gtest.h>
#include <sys/wait.h>
#include <torch/torch.h>
#include <unistd.h>

#include <nlohmann/json.hpp>

#include <chrono>
#include <csignal>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <thread>
#include <tuple>

#include "../support/fixtures.h"
#include "../support/temp_dir.h"
#include "xmodal/io/atomic_file.h"

namespace xmodal::checkpoint {
namespace {

namespace fs = std::filesystem;
using xmodal::testing::TempDir;

CheckpointContent sample_checkpoint(int64_t step, int64_t size) {
  CheckpointContent c;
  c.state.step = step;
  c.state.schedule = "cosine";
  c.state.rng_cpu = cpu_rng_state();
  c.state.early_stopping.best = 0.25;
  c.state.early_stopping.bad_evals = 2;
  c.model["w"] = torch::arange(size, torch::kFloat32);
  c.optimizer["exp_avg/w"] = torch::ones({size});
  c.files["config.yaml"] = "task: vqa\n";
  return c;
}

TEST(Checkpoint, RoundTripsStateAndIsAPlainSafetensorsFile) {
  TempDir dir;
  const std::string run = dir.path().string();
  const auto written = write_checkpoint(run, sample_checkpoint(7, 10));
  EXPECT_EQ(written, (dir.path() / "checkpoints" / "step-7").string());
  const auto back = load_checkpoint(written);
  EXPECT_EQ(back.state.step, 7);
  EXPECT_EQ(back.state.early_stopping.best, 0.25);
  EXPECT_EQ(back.state.early_stopping.bad_evals, 2);
  EXPECT_TRUE(torch::equal(back.model.at("w"), torch::arange(10, torch::kFloat32)));
  EXPECT_EQ(back.files.at("config.yaml"), "task: vqa\n");

  // A plain reader: 8-byte little-endian header length, JSON header, data offsets.
  const std::string bytes = io::read_file(written + "/model.safetensors");
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = n << 8 | static_cast<uint8_t>(bytes[i]);
  const auto header = nlohmann::json::parse(bytes.substr(8, n));
  EXPECT_EQ(header["w"]["dtype"], "F32");
  EXPECT_EQ(header["w"]["shape"], nlohmann::json::array({10}));
  const auto offsets = header["w"]["data_offsets"];
  const size_t begin = 8 + n + offsets[0].get<size_t>();
  float third;
  std::memcpy(&third, bytes.data() + begin + 3 * sizeof(float), sizeof third);
  EXPECT_EQ(third, 3.0f);
  EXPECT_EQ(bytes.size(), 8 + n + offsets[1].get<size_t>());
}

TEST(Checkpoint, CorruptTruncatedOrHalfWrittenOnesNeverLoad) {
  TempDir dir;
  const std::string run = dir.path().string();
  write_checkpoint(run, sample_checkpoint(1, 10));
  const auto second = write_checkpoint(run, sample_checkpoint(2, 10));
  const auto third = write_checkpoint(run, sample_checkpoint(3, 10));

  // Bit flip in the newest: checksum mismatch named.
  {
    std::string bytes = io::read_file(third + "/model.safetensors");
    bytes[bytes.size() - 2] ^= 0x10;
    std::ofstream(third + "/model.safetensors", std::ios::binary) << bytes;
  }
  try {
    load_checkpoint(third);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("model.safetensors checksum mismatch"), std::string::npos)
        << e.what();
  }
  // Truncated optimizer state in the second.
  fs::resize_file(second + "/optimizer.safetensors", 20);
  EXPECT_THROW(load_checkpoint(second), std::runtime_error);
  // A writer killed before its rename leaves a .tmp- directory: ignored, then removed.
  fs::create_directories(dir.path() / "checkpoints" / ".tmp-step-9-123");
  std::ofstream(dir.path() / "checkpoints" / ".tmp-step-9-123" / "model.safetensors") << "x";
  EXPECT_EQ(latest_checkpoint(run), (dir.path() / "checkpoints" / "step-1").string());
  EXPECT_EQ(resolve_checkpoint(run), (dir.path() / "checkpoints" / "step-1").string());
  EXPECT_EQ(remove_debris(run), 1);
  EXPECT_FALSE(fs::exists(dir.path() / "checkpoints" / ".tmp-step-9-123"));
}

// state.json is untrusted: a number that is not a whole number in range (1e79, 2.5, -1) is named,
// never converted (a double beyond int64 converted to an integer is undefined behaviour).
TEST(Checkpoint, StateNumbersOutOfRangeAreNamed) {
  TempDir dir;
  const auto ckpt = write_checkpoint(dir.path().string(), sample_checkpoint(4, 10));
  const std::string original = io::read_file(ckpt + "/state.json");
  const auto edited = [&](const std::string& from, const std::string& to) {
    std::string text = original;
    const auto at = text.find(from);
    EXPECT_NE(at, std::string::npos) << from;
    if (at != std::string::npos) text.replace(at, from.size(), to);
    std::ofstream(ckpt + "/state.json", std::ios::binary | std::ios::trunc) << text;
  };
  const std::vector<std::tuple<std::string, std::string, std::string>> cases = {
      {"\"format_version\": 1", "\"format_version\": 1e79", "format_version is 1e+79"},
      {"\"step\": 4", "\"step\": 2.5", "step is 2.5, not an integer"},
      {"\"step\": 4", "\"step\": -1", "step is -1, not an integer in [0, "},
      {"\"world_size\": 1", "\"world_size\": 0", "world_size is 0"}};
  for (const auto& [from, to, message] : cases) {
    edited(from, to);
    const std::string error = xmodal::testing::error_of([&] { load_checkpoint(ckpt); });
    EXPECT_NE(error.find("state.json: " + message), std::string::npos) << to << ": " << error;
  }
}

// Kills a process that writes checkpoints in a loop at random moments: whatever is left on disk
// either loads completely or is debris that is never taken for a checkpoint.
TEST(Checkpoint, KilledWriterNeverLeavesALoadableBrokenCheckpoint) {
  TempDir dir;
  const std::string run = dir.path().string();
  std::mt19937 rng(11);
  // Built before fork(): the child touches no thread pool, only files.
  CheckpointContent content = sample_checkpoint(0, 200000);
  for (int round = 0; round < 6; ++round) {
    const pid_t child = fork();
    ASSERT_GE(child, 0);
    if (child == 0) {
      for (int64_t step = 1;; ++step) {
        content.state.step = round * 100000 + step;
        set_pointer(run, "last", write_checkpoint(run, content));
      }
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20 + rng() % 60));
    kill(child, SIGKILL);
    int status = 0;
    waitpid(child, &status, 0);
    for (const int64_t step : checkpoint_steps(run)) {
      const auto path = dir.path() / "checkpoints" / ("step-" + std::to_string(step));
      EXPECT_NO_THROW(load_checkpoint(path.string())) << path;
    }
    const auto latest = latest_checkpoint(run);
    if (!checkpoint_steps(run).empty()) {
      EXPECT_FALSE(latest.empty());
    }
    remove_debris(run);
    prune_checkpoints(run, 2, {});
  }
  for (const auto& e : fs::directory_iterator(dir.path() / "checkpoints")) {
    EXPECT_EQ(e.path().filename().string().rfind("step-", 0), 0u) << e.path();
  }
}

TEST(Checkpoint, VerifyingWithoutTensorsChecksEveryFileButParsesNone) {
  TempDir dir;
  const auto ckpt = write_checkpoint(dir.path().string(), sample_checkpoint(5, 10));
  const auto verified = load_checkpoint(ckpt, {/*optimizer=*/true, /*tensors=*/false});
  EXPECT_EQ(verified.state.step, 5);
  EXPECT_TRUE(verified.model.empty());
  EXPECT_TRUE(verified.optimizer.empty());
  EXPECT_EQ(verified.files.at("config.yaml"), "task: vqa\n");
  // ... and still finds a damaged file by its checksum.
  std::string bytes = io::read_file(ckpt + "/optimizer.safetensors");
  bytes[bytes.size() - 1] ^= 0x01;
  std::ofstream(ckpt + "/optimizer.safetensors", std::ios::binary | std::ios::trunc) << bytes;
  const std::string error = xmodal::testing::error_of([&] {
    load_checkpoint(ckpt, {/*optimizer=*/true, /*tensors=*/false});
  });
  EXPECT_NE(error.find("optimizer.safetensors checksum mismatch"), std::string::npos) << error;
}

TEST(Checkpoint, PruningKeepsTheNewestAndTheBest) {
  TempDir dir;
  const std::string run = dir.path().string();
  for (int64_t step : {10, 20, 30, 40, 50}) write_checkpoint(run, sample_checkpoint(step, 4));
  prune_checkpoints(run, 2, {20});
  EXPECT_EQ(checkpoint_steps(run), (std::vector<int64_t>{20, 40, 50}));
  prune_checkpoints(run, 1, {});  // the best moved on: only the newest stays
  EXPECT_EQ(checkpoint_steps(run), (std::vector<int64_t>{50}));
  EXPECT_EQ(remove_debris(run), 0);  // nothing of the removed ones is left behind
}

TEST(Checkpoint, PointersAndRunFoldersResolveToACheckpoint) {
  TempDir dir;
  const std::string run = dir.path().string();
  const auto first = write_checkpoint(run, sample_checkpoint(1, 4));
  const auto second = write_checkpoint(run, sample_checkpoint(2, 4));
  set_pointer(run, "best", first);
  set_pointer(run, "last", second);
  EXPECT_TRUE(fs::is_symlink(dir.path() / "best"));
  EXPECT_EQ(fs::read_symlink(dir.path() / "best"), fs::path("checkpoints") / "step-1");
  EXPECT_EQ(fs::canonical(resolve_checkpoint(run + "/best")), fs::canonical(first));
  EXPECT_EQ(fs::canonical(resolve_checkpoint(run + "/last")), fs::canonical(second));
  EXPECT_EQ(resolve_checkpoint(run), second);  // a run folder: its newest valid checkpoint
  set_pointer(run, "best", second);            // replaced, not added to
  EXPECT_EQ(fs::read_symlink(dir.path() / "best"), fs::path("checkpoints") / "step-2");
  const TempDir empty;
  EXPECT_THROW(resolve_checkpoint(empty.path().string()), std::runtime_error);
}

// A checkpoint whose RNG state does not load cannot resume bit-identically: discovery passes over
// it to the one before.
TEST(Checkpoint, DiscoveryPassesOverABadRngState) {
  TempDir dir;
  const std::string run = dir.path().string();
  const auto good = write_checkpoint(run, sample_checkpoint(1, 4));
  auto bad = sample_checkpoint(2, 4);
  bad.state.rng_cpu = "00ff";
  write_checkpoint(run, bad);
  EXPECT_EQ(latest_checkpoint(run), good);
  EXPECT_THROW(check_cpu_rng_state("00ff"), std::runtime_error);
  EXPECT_THROW(check_cpu_rng_state("not hex"), std::runtime_error);
  EXPECT_NO_THROW(check_cpu_rng_state(cpu_rng_state()));
}

TEST(Checkpoint, RngStateRoundTripsTheGenerator) {
  torch::manual_seed(3);
  const std::string saved = cpu_rng_state();
  const auto a = torch::rand({4});
  set_cpu_rng_state(saved);
  EXPECT_TRUE(torch::equal(torch::rand({4}), a));
}

TEST(Checkpoint, Crc32IsZlibs) {
  EXPECT_EQ(crc32_hex("123456789"), "cbf43926");  // the CRC-32 check value
  EXPECT_EQ(crc32_hex(""), "00000000");
}

}  // namespace
}  // namespace xmodal::checkpoint
