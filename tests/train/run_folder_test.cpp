// Which folders a run may take (train/run_folder.h), the lock, a checkpoint checked against the
// run that continues it, and metrics.jsonl cut back to a resumed step (train/metrics_log.h).
#include "xmodal/train/run_folder.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "../support/fixtures.h"
#include "../support/temp_dir.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/train/metrics_log.h"

namespace xmodal::train {
namespace {

namespace fs = std::filesystem;
using checkpoint::TrainState;
using xmodal::testing::TempDir;

template <typename E, typename F>
std::string message_of(F f) {
  try {
    f();
  } catch (const E& e) {
    return e.what();
  }
  return "";
}

TEST(RunFolder, AFreshRunTakesNewEmptyOrItsOwnConfigsFolderOnly) {
  TempDir dir;
  const std::string fresh = (dir.path() / "new").string();
  EXPECT_EQ(check_run_folder(fresh, "", false).config_path, fresh + "/config.yaml");
  EXPECT_TRUE(fs::is_directory(fresh));

  const std::string users = (dir.path() / "exp1").string();
  const std::string config = dir.write("exp1/config.yaml", "task: vqa\n");
  const auto claim = check_run_folder(users, config, false);
  EXPECT_TRUE(claim.users_config);
  EXPECT_EQ(claim.config_path, users + "/config.resolved.yaml");  // the user's file stays

  dir.write("exp1/notes.txt", "mine");
  const std::string refused =
      message_of<std::invalid_argument>([&] { check_run_folder(users, config, false); });
  EXPECT_NE(refused.find("is not empty and was not made by xmodal (it holds config.yaml, "
                         "notes.txt)"),
            std::string::npos)
      << refused;
  dir.write("file", "x");
  EXPECT_THROW(check_run_folder((dir.path() / "file").string(), "", false), std::invalid_argument);
  EXPECT_THROW(check_run_folder("", "", false), std::invalid_argument);
}

TEST(RunFolder, AnAttemptThatNeverCheckpointedIsStale) {
  TempDir dir;
  dir.write(std::string(kRunLockFile), "123\n");
  dir.write("metrics.jsonl", "{}\n");
  EXPECT_TRUE(check_run_folder(dir.path().string(), "", false).stale_attempt);
}

TEST(RunFolder, TheLockRefusesASecondHolderNamingThePid) {
  TempDir dir;
  {
    const RunFolderLock first(dir.path().string());
    const std::string second =
        message_of<std::runtime_error>([&] { RunFolderLock again(dir.path().string()); });
    EXPECT_NE(
        second.find("is in use by another xmodal train (PID " + std::to_string(::getpid()) + ")"),
        std::string::npos)
        << second;
  }
  EXPECT_NO_THROW(RunFolderLock(dir.path().string()));  // released with its holder
}

TEST(RunFolder, ClaimingFindsTheCheckpointToResumeOrRefusesToOverwrite) {
  TempDir dir;
  const std::string run = (dir.path() / "run").string();
  EXPECT_NE(message_of<std::runtime_error>([&] {
              claim_run_folder(run, "", true, true);
            }).find("no complete checkpoint to resume"),
            std::string::npos);
  checkpoint::CheckpointContent content;
  content.state.step = 3;
  content.model["w"] = torch::ones({2});
  content.optimizer["m"] = torch::ones({2});
  const std::string ckpt = checkpoint::write_checkpoint(run, content);
  fs::create_directories(fs::path(run) / "checkpoints" / ".tmp-step-4-1");  // a killed writer's
  const ClaimedRun resumed = claim_run_folder(run, "", true, true);
  EXPECT_EQ(resumed.resume_from, ckpt);
  EXPECT_EQ(resumed.debris, 1);
  EXPECT_TRUE(resumed.lock);
  const std::string again = message_of<std::runtime_error>(
      [&] { claim_run_folder(run, "", true, true); });  // still locked by `resumed`
  EXPECT_NE(again.find("in use"), std::string::npos) << again;
}

TEST(RunFolder, AFreshRunRefusesAFolderWithCheckpoints) {
  TempDir dir;
  const std::string run = (dir.path() / "run").string();
  checkpoint::CheckpointContent content;
  content.state.step = 8;
  content.model["w"] = torch::ones({2});
  checkpoint::write_checkpoint(run, content);
  const std::string refused =
      message_of<std::invalid_argument>([&] { claim_run_folder(run, "", false, true); });
  EXPECT_NE(refused.find("already holds a run (checkpoints/step-8); continue it with `xmodal "
                         "train --resume " +
                         run + "`"),
            std::string::npos)
      << refused;
}

TEST(RunFolder, ACheckpointContinuesOnlyARunOfTheSameShape) {
  TrainState planned;
  planned.world_size = 1;
  planned.total_steps = 100;
  TrainState saved = planned;
  saved.batch = 12;
  EXPECT_NO_THROW(check_resumable(saved, planned, 12, "c"));  // the end of an epoch
  saved.world_size = 2;
  EXPECT_NE(message_of<std::invalid_argument>([&] {
              check_resumable(saved, planned, 12, "c");
            }).find("resume it with the same number (--nproc 2)"),
            std::string::npos);
  saved.world_size = 1;
  saved.batch = 13;
  EXPECT_NE(message_of<std::runtime_error>([&] {
              check_resumable(saved, planned, 12, "c");
            }).find("its data position (batch 13) is outside the epoch of 12 batches"),
            std::string::npos);
  saved.batch = 0;
  saved.total_steps = 50;  // a changed schedule only warns
  EXPECT_NO_THROW(check_resumable(saved, planned, 12, "c"));
}

TEST(MetricsLog, AResumedRunCutsTheRecordsAfterItsStep) {
  TempDir dir;
  const std::string path = (dir.path() / "metrics.jsonl").string();
  {
    MetricsLog log(path);
    for (int step : {10, 20, 30}) log.write({{"event", "train"}, {"step", step}});
    log.write({{"event", "end"}, {"step", 20}, {"train_s", 1.5}});  // killed after its end
  }
  {
    std::ofstream(path, std::ios::app) << "{\"event\": \"train\", \"st";  // a killed writer
  }
  truncate_metrics(path, 20);
  EXPECT_EQ(io::read_file(path),
            "{\"event\":\"train\",\"step\":10}\n{\"event\":\"train\",\"step\":20}\n");
  MetricsLog none("");  // ranks other than 0 write nothing
  EXPECT_NO_THROW(none.write({{"step", 1}}));
  EXPECT_THROW(MetricsLog((dir.path() / "no" / "such" / "m.jsonl").string()), std::runtime_error);
}

TEST(MetricsLog, DurationsAndMetricsAsTheLogWritesThem) {
  EXPECT_EQ(format_duration(65), "1m05s");
  EXPECT_EQ(format_duration(3725), "1h02m");
  EXPECT_EQ(format_duration(-1), "?");
  EXPECT_EQ(format_metrics({{"accuracy", 0.5}, {"loss", 1.25}}), "accuracy 0.5000 loss 1.2500");
  EXPECT_TRUE(metrics_json({{"map", std::nan("")}})["map"].is_null());
}

}  // namespace
}  // namespace xmodal::train
