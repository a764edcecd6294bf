// The CLI parser, driven in-process through the same run() the binary calls.
#include "xmodal/cli.h"

#include <gtest/gtest.h>

#include "xmodal_test_paths.h"

#include <filesystem>
#include <sstream>

#include "../support/temp_dir.h"
#include "xmodal/config/loader.h"

namespace xmodal::cli {
namespace {

struct Result {
  int code;
  std::string out;
  std::string err;
};

Result run_cli(std::vector<std::string> args) {
  args.insert(args.begin(), "xmodal");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  std::ostringstream out, err;
  const int code = run(static_cast<int>(argv.size()), argv.data(), out, err);
  return {code, out.str(), err.str()};
}

const std::string kQuickstart = std::string(XMODAL_SOURCE_DIR) + "/configs/quickstart.yaml";

TEST(Cli, HelpListsEverySubcommand) {
  const Result r = run_cli({"--help"});
  EXPECT_EQ(r.code, 0);
  for (const char* cmd : {"train", "eval", "predict", "data", "info", "score", "--log-level",
                          "--threads", "--device", "--version"}) {
    EXPECT_NE(r.out.find(cmd), std::string::npos) << cmd << "\n" << r.out;
  }
}

TEST(Cli, EverySubcommandHasHelp) {
  for (const char* cmd :
       {"train", "eval", "predict", "data", "info", "score", "embed", "explain"}) {
    const Result r = run_cli({cmd, "--help"});
    EXPECT_EQ(r.code, 0) << cmd;
    EXPECT_NE(r.out.find(std::string("xmodal ") + cmd), std::string::npos) << r.out;
  }
}

TEST(Cli, VersionNamesXmodalAndLibTorch) {
  const Result r = run_cli({"--version"});
  EXPECT_EQ(r.code, 0);
  EXPECT_NE(r.out.find("xmodal 0."), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("LibTorch 2."), std::string::npos) << r.out;
}

TEST(Cli, UsageErrorsExit2) {
  EXPECT_EQ(run_cli({}).code, 2);
  EXPECT_EQ(run_cli({"frobnicate"}).code, 2);
  EXPECT_EQ(run_cli({"info", "--threads", "-3"}).code, 2);
  EXPECT_EQ(run_cli({"--log-level", "loud", "info"}).code, 2);
  EXPECT_EQ(run_cli({"eval"}).code, 2);  // --checkpoint is required
  EXPECT_EQ(run_cli({"train", "/nonexistent.yaml"}).code, 2);
  EXPECT_EQ(run_cli({"train"}).code, 2);
}

TEST(Cli, InfoReportsThreadsAndBlas) {
  const Result r = run_cli({"info", "--threads", "1"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("compute threads: 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("BLAS: "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("devices: cpu"), std::string::npos) << r.out;
  EXPECT_EQ(run_cli({"info", "--device", "tpu"}).code, 2);
}

TEST(Cli, InfoWithConfigPrintsTheModelTree) {
  const Result r = run_cli({"info", "--config", kQuickstart, "--set", "model.fusion.mode=late",
                            "--vocab-size", "50", "--classes", "7"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("fusion late; assuming vocab 50 and 7 classes"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("vision                   ViT"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("late_fc1"), std::string::npos) << r.out;
  EXPECT_EQ(run_cli({"info", "--config", kQuickstart, "--set", "model.vision.heads=5"}).code, 2);
}

TEST(Cli, SharedFlagsGoBeforeOrAfterTheSubcommand) {
  EXPECT_EQ(run_cli({"--threads", "1", "info"}).code, 0);
  EXPECT_EQ(run_cli({"info", "--log-level", "warn"}).code, 0);
}

TEST(Cli, LogFileIsCreatedAndUnwritableOneIsAnError) {
  xmodal::testing::TempDir dir;
  const auto path = dir.path() / "logs" / "x.log";
  EXPECT_EQ(run_cli({"--log-file", path.string(), "info"}).code, 0);
  EXPECT_TRUE(std::filesystem::exists(path));
  const Result r = run_cli({"--log-file", "/proc/no/such/x.log", "info"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("xmodal: error: "), std::string::npos) << r.err;
}

TEST(Cli, DumpConfigAppliesSetAndSharedFlagsAndRoundTrips) {
  const Result r = run_cli({"train", kQuickstart, "--set", "train.lr=0.002", "--set",
                            "model.fusion.mode=late", "--threads", "3", "--device", "cpu",
                            "--run-dir", "runs/elsewhere", "--dump-config"});
  ASSERT_EQ(r.code, 0) << r.err;
  const config::Config c = config::parse_config(r.out, "dumped.yaml");
  EXPECT_DOUBLE_EQ(c.train.lr, 0.002);
  EXPECT_EQ(c.model.fusion.mode, config::FusionMode::late);
  EXPECT_EQ(c.run.threads, 3);
  EXPECT_EQ(c.run.device, "cpu");
  EXPECT_EQ(c.run.dir, "runs/elsewhere");
  // The dump of the reloaded config is the same text.
  EXPECT_EQ(config::dump_config(c), r.out);
}

TEST(Cli, ConfigErrorsExit2WithFileLineAndKey) {
  xmodal::testing::TempDir dir;
  const std::string path =
      dir.write("bad.yaml", "model:\n  vision:\n    pach_size: 16\ntrain:\n  lr: fast\n");
  const Result r = run_cli({"train", path});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("xmodal: error: " + path +
                       ":3: unknown key model.vision.pach_size (did you mean patch_size?)"),
            std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find(path + ":5: train.lr: expected a number, got 'fast'"), std::string::npos)
      << r.err;
  const Result e = run_cli({"train", kQuickstart, "--set", "model.fusion.mode=cross"});
  EXPECT_EQ(e.code, 2);
  EXPECT_NE(e.err.find("model.fusion.mode: unknown value 'cross' (expected one of: concat, late, "
                       "image_only, text_only)"),
            std::string::npos)
      << e.err;
}

TEST(Cli, DataScenesBuildsASetAndReportsAnswers) {
  xmodal::testing::TempDir dir;
  const Result r = run_cli({"data", "scenes", "--out", dir.path().string(), "--train", "6", "--val",
                            "2", "--test", "2", "--canvas", "40", "--item-size", "10:16"});
  EXPECT_EQ(r.code, 0) << r.err;
  EXPECT_NE(r.out.find("| train | yes/no | 12 |"), std::string::npos) << r.out;
  EXPECT_TRUE(std::filesystem::exists(dir.path() / "v2_mscoco_val_annotations.json"));
  // The same options again: nothing to do; other options: refused, the set left as it is.
  const Result again =
      run_cli({"data", "scenes", "--out", dir.path().string(), "--train", "6", "--val", "2",
               "--test", "2", "--canvas", "40", "--item-size", "10:16"});
  EXPECT_EQ(again.code, 0) << again.err;
  EXPECT_NE(again.out.find("already holds this set"), std::string::npos) << again.out;
  const Result other = run_cli({"data", "scenes", "--out", dir.path().string(), "--train", "7"});
  EXPECT_EQ(other.code, 2);
  EXPECT_NE(other.err.find("train 6 there, 7 now"), std::string::npos) << other.err;
  EXPECT_EQ(run_cli({"data", "scenes", "--out", dir.path().string(), "--item-size", "big"}).code,
            2);
  EXPECT_EQ(run_cli({"data", "scenes", "--out", dir.path().string(), "--min-items", "5",
                     "--max-items", "2"})
                .code,
            2);
  EXPECT_EQ(run_cli({"data", "scenes", "--out", (dir.path() / "new").string(), "--fashion-mnist",
                     "/nope"})
                .code,
            1);
}

TEST(Cli, EmbedBadInputSaysWhatInOneLine) {
  const auto one_line = [](const Result& r) {
    return std::count(r.err.begin(), r.err.end(), '\n') == 1;
  };
  Result r = run_cli({"embed", "--checkpoint", "/nope", "--image", "a.png", "--out", "f"});
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.err.find("/nope"), std::string::npos) << r.err;
  EXPECT_TRUE(one_line(r)) << r.err;
  r = run_cli(
      {"embed", "--checkpoint", "c", "--config", "c.yaml", "--image", "a.png", "--out", "f"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("exactly one of --config and --checkpoint"), std::string::npos) << r.err;
  r = run_cli({"embed", "--checkpoint", "c", "--out", "f"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("give --image, --text or --input"), std::string::npos) << r.err;
  EXPECT_TRUE(one_line(r)) << r.err;
}

// The library names its options by their fields (core/error.h OptionError); the CLI states them
// as the flags of the command that ran.
TEST(Cli, LibraryOptionsAreNamedAsTheCommandsFlags) {
  Result r = run_cli({"search", "--index", "ix", "--text", "a", "--image", "b.png"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("search: give exactly one of --text and --image"), std::string::npos)
      << r.err;
  r = run_cli({"index", "--checkpoint", "c", "--out", "ix"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("index: give exactly one of --images (a folder) and --split"),
            std::string::npos)
      << r.err;
  // EmbedOptions::texts is the repeated --text
  r = run_cli({"embed", "--checkpoint", "c", "--input", "in.jsonl", "--text", "a", "--out", "f"});
  EXPECT_EQ(r.code, 2);
  EXPECT_NE(r.err.find("embed: give --input (a file) or --image/--text, not both"),
            std::string::npos)
      << r.err;
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
}

}  // namespace
}  // namespace xmodal::cli
