#include "xmodal/config/loader.h"

#include <gtest/gtest.h>

#include <filesystem>

#include "../support/temp_dir.h"
#include "xmodal/core/error.h"

namespace xmodal::config {
namespace {

using xmodal::testing::TempDir;

// The ConfigError message of loading `yaml` (with `sets`), or "" when it loads.
std::string load_error(const std::string& yaml, const std::vector<std::string>& sets = {}) {
  try {
    parse_config(yaml, "test.yaml", sets);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Loader, EmptyFileGivesDefaults) {
  const Config c = parse_config("", "empty.yaml");
  EXPECT_EQ(c, Config{});
  EXPECT_TRUE(c.origins.empty());
}

TEST(Loader, ReadsEveryKind) {
  const Config c = parse_config(
      "task: counting\n"
      "run: {dir: runs/x, seed: 7, threads: 2, device: cpu}\n"
      "model:\n"
      "  vision: {patch_size: 8, hidden: 64, heads: 4}\n"
      "  fusion: {mode: late}\n"
      "train:\n"
      "  lr: 1e-3\n"
      "  max_steps: 1e4\n"
      "  early_stopping: {metric: mae, mode: min}\n",
      "t.yaml");
  EXPECT_EQ(c.task, Task::counting);
  EXPECT_EQ(c.run.dir, "runs/x");
  EXPECT_EQ(c.run.seed, 7);
  EXPECT_EQ(c.run.threads, 2);
  EXPECT_EQ(c.model.vision.patch_size, 8);
  EXPECT_EQ(c.model.vision.hidden, 64);
  EXPECT_EQ(c.model.fusion.mode, FusionMode::late);
  EXPECT_DOUBLE_EQ(c.train.lr, 1e-3);
  EXPECT_EQ(c.train.max_steps, 10000);
  EXPECT_EQ(c.train.early_stopping.mode, MetricMode::min);
  EXPECT_EQ(c.origin("model.vision.patch_size"), "t.yaml:4");
  EXPECT_EQ(c.origin("train.lr"), "t.yaml:7");
  EXPECT_EQ(c.origin("model.vision.layers"), "default");
}

TEST(Loader, UnknownKeyNamesFileLineFullKeyAndSuggestion) {
  const std::string e = load_error("task: vqa\nmodel:\n  vision:\n    pach_size: 16\n");
  EXPECT_EQ(e, "test.yaml:4: unknown key model.vision.pach_size (did you mean patch_size?)");
}

TEST(Loader, ReportsAllUnknownKeysAtOnce) {
  const std::string e = load_error(
      "trian: {lr: 1}\n"
      "model:\n"
      "  vision: {hiden: 8}\n"
      "  text: {layerz: 1}\n"
      "eval: {batch_size: 4, extra: 1}\n");
  EXPECT_NE(e.find("test.yaml:1: unknown key trian (did you mean train?)"), std::string::npos) << e;
  EXPECT_NE(e.find("test.yaml:3: unknown key model.vision.hiden (did you mean hidden?)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("test.yaml:4: unknown key model.text.layerz (did you mean layers?)"),
            std::string::npos)
      << e;
  EXPECT_NE(e.find("test.yaml:5: unknown key eval.extra"), std::string::npos) << e;
  EXPECT_EQ(std::count(e.begin(), e.end(), '\n'), 3) << e;
}

TEST(Loader, SuggestsTheSameKeyInAnotherSection) {
  const std::string e = load_error("train:\n  patch_size: 8\n");
  EXPECT_EQ(e, "test.yaml:2: unknown key train.patch_size (did you mean model.vision.patch_size?)");
}

TEST(Loader, WrongTypesNameKeyAndExpectation) {
  EXPECT_EQ(load_error("train:\n  lr: fast\n"),
            "test.yaml:2: train.lr: expected a number, got 'fast'");
  EXPECT_EQ(load_error("train: {batch_size: 1.5}"),
            "test.yaml:1: train.batch_size: expected an integer, got '1.5'");
  EXPECT_EQ(load_error("train: {batch_size: [1, 2]}"),
            "test.yaml:1: train.batch_size: expected an integer, got a list");
  EXPECT_EQ(load_error("model: {vision: 3}"),
            "test.yaml:1: model.vision: expected a mapping of keys, got '3'");
  EXPECT_EQ(load_error("run: {dir: {a: 1}}"),
            "test.yaml:1: run.dir: expected a string, got a mapping");
  EXPECT_EQ(load_error("train: {lr: .nan}"),
            "test.yaml:1: train.lr: expected a number, got '.nan'");
  EXPECT_EQ(load_error("train: {epochs: }"),
            "test.yaml:1: train.epochs: expected an integer, got nothing");
}

TEST(Loader, OutOfRangeValuesNameTheRange) {
  EXPECT_EQ(load_error("train: {batch_size: 0}"),
            "test.yaml:1: train.batch_size: must be >= 1, got 0");
  EXPECT_EQ(load_error("train: {lr: 0}"), "test.yaml:1: train.lr: must be > 0, got 0");
  EXPECT_EQ(load_error("model: {vision: {dropout: 1.5}}"),
            "test.yaml:1: model.vision.dropout: must be between 0 and 1, got 1.5");
  EXPECT_EQ(load_error("train: {max_steps: 1e30}"),
            "test.yaml:1: train.max_steps: value 1e30 does not fit the field");
}

TEST(Loader, UnknownEnumValueListsAllowedValues) {
  EXPECT_EQ(load_error("model: {fusion: {mode: cross}}"),
            "test.yaml:1: model.fusion.mode: unknown value 'cross' (expected one of: concat, late, "
            "image_only, text_only)");
  EXPECT_EQ(load_error("task: countin"),
            "test.yaml:1: task: unknown value 'countin' (expected one of: vqa, counting, "
            "classify, retrieval, caption); did you "
            "mean counting?");
}

TEST(Loader, DuplicateKeysAreErrors) {
  const std::string e = load_error("train:\n  lr: 1\n  lr: 2\n");
  EXPECT_EQ(e, "test.yaml:3: duplicate key train.lr (first set at test.yaml:2)");
}

TEST(Loader, SyntaxErrorsGiveLineAndColumn) {
  const std::string e = load_error("train:\n  lr: [1, 2\n");
  EXPECT_EQ(e.rfind("test.yaml:", 0), 0u) << e;
  EXPECT_NE(e.find("YAML syntax error"), std::string::npos) << e;
}

TEST(Loader, TopLevelMustBeAMapping) {
  EXPECT_EQ(load_error("- a\n- b\n"),
            "test.yaml: expected a mapping of config keys at the top level, got a list");
}

TEST(Loader, NullSectionKeepsDefaults) {
  const Config c = parse_config("eval:\ntrain:\n", "t.yaml");
  EXPECT_EQ(c, Config{});
}

TEST(Loader, MissingFileIsAConfigError) {
  try {
    load_config("/nonexistent/cfg.yaml");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cannot read config file '/nonexistent/cfg.yaml': no such file");
  }
}

TEST(Loader, IncludeIsRelativeToTheIncludingFileAndIsOverridden) {
  TempDir dir;
  dir.write("base/base.yaml", "task: counting\ntrain: {lr: 0.5, epochs: 3}\n");
  dir.write("base/mid.yaml", "include: base.yaml\ntrain: {epochs: 4}\nrun: {seed: 9}\n");
  const std::string top = dir.write("top.yaml",
                                    "include: base/mid.yaml\ntrain: {epochs: 5}\n"
                                    "model: {vision: {patch_size: 8}}\n");
  const Config c = load_config(top);
  EXPECT_EQ(c.task, Task::counting);
  EXPECT_DOUBLE_EQ(c.train.lr, 0.5);
  EXPECT_EQ(c.train.epochs, 5);
  EXPECT_EQ(c.run.seed, 9);
  EXPECT_EQ(c.model.vision.patch_size, 8);
  EXPECT_NE(c.origin("train.lr").find("base.yaml:2"), std::string::npos) << c.origin("train.lr");
}

TEST(Loader, IncludeListAppliesInOrder) {
  TempDir dir;
  dir.write("a.yaml", "train: {lr: 0.1, epochs: 1}\n");
  dir.write("b.yaml", "train: {lr: 0.2}\n");
  const Config c = load_config(dir.write("c.yaml", "include: [a.yaml, b.yaml]\n"));
  EXPECT_DOUBLE_EQ(c.train.lr, 0.2);
  EXPECT_EQ(c.train.epochs, 1);
}

TEST(Loader, IncludeErrorsNameTheIncludingLine) {
  TempDir dir;
  const std::string self = dir.write("self.yaml", "task: vqa\ninclude: self.yaml\n");
  try {
    load_config(self);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("self.yaml:2: include: 'self.yaml' includes itself"),
              std::string::npos)
        << e.what();
  }
  const std::string missing = dir.write("m.yaml", "include: nope.yaml\n");
  try {
    load_config(missing);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("m.yaml:1: include: cannot read 'nope.yaml'"),
              std::string::npos)
        << e.what();
  }
  // An error inside an included file names that file.
  dir.write("bad.yaml", "train:\n  lr: fast\n");
  try {
    load_config(dir.write("inc.yaml", "include: bad.yaml\n"));
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_NE(std::string(e.what()).find("bad.yaml:2: train.lr: expected a number"),
              std::string::npos)
        << e.what();
  }
}

TEST(Loader, PrecedenceDefaultsFileThenOverrides) {
  TempDir dir;
  const std::string path = dir.write("c.yaml", "train: {lr: 0.5, batch_size: 16}\n");
  const Config c = load_config(path, {"train.lr=0.25", "train.lr=0.125", "run.dir=out/x"});
  EXPECT_DOUBLE_EQ(c.train.lr, 0.125);  // later --set wins
  EXPECT_EQ(c.train.batch_size, 16);    // file beats default
  EXPECT_EQ(c.train.epochs, 10);        // default
  EXPECT_EQ(c.run.dir, "out/x");
  EXPECT_EQ(c.origin("train.lr"), "--set train.lr=0.125");
}

TEST(Loader, OverridesAreCheckedLikeTheFile) {
  EXPECT_EQ(load_error("", {"model.vision.pach_size=8"}),
            "--set model.vision.pach_size=8: unknown key model.vision.pach_size (did you mean "
            "patch_size?)");
  EXPECT_EQ(load_error("", {"train.lr=fast"}),
            "--set train.lr=fast: train.lr: expected a number, got 'fast'");
  EXPECT_EQ(load_error("", {"train.lr"}),
            "--set train.lr: expected KEY=VALUE, e.g. --set train.lr=1e-3");
  EXPECT_EQ(load_error("", {"train..lr=1"}),
            "--set train..lr=1: malformed key 'train..lr' (expected a.b.c)");
  EXPECT_EQ(load_error("", {"model.vsion.hidden=8"}),
            "--set model.vsion.hidden=8: unknown key model.vsion (did you mean vision?)");
  EXPECT_EQ(load_error("", {"include=x.yaml"}),
            "--set include=x.yaml: include is only allowed inside a config file");
}

TEST(Loader, OverrideCanSetASectionAndClearAString) {
  const Config c =
      parse_config("model: {text: {pretrained: some/dir}}", "t.yaml",
                   {"train.early_stopping={metric: loss, mode: min}", "model.text.pretrained="});
  EXPECT_EQ(c.train.early_stopping.metric, "loss");
  EXPECT_EQ(c.train.early_stopping.mode, MetricMode::min);
  EXPECT_EQ(c.model.text.pretrained, "");
}

TEST(Loader, ValidationRunsAfterOverrides) {
  const std::string e =
      load_error("model: {vision: {hidden: 64, heads: 4}}", {"model.vision.heads=5"});
  EXPECT_EQ(e,
            "--set model.vision.heads=5: model.vision.hidden (64) must be divisible by "
            "model.vision.heads (5)");
}

TEST(Dump, RoundTripsDefaultsAndEveryKindOfValue) {
  Config c;
  c.task = Task::counting;
  c.run.dir = "runs/with \"quotes\" and: colon #hash";
  c.run.device = "cpu";
  c.train.lr = 0.1 + 0.2;  // not exactly representable in short decimal
  c.train.weight_decay = 1e-300;
  c.train.max_steps = 123456789012LL;
  c.train.early_stopping = {"mae", MetricMode::min, 3, 0.5};
  c.model.fusion.mode = FusionMode::text_only;
  c.model.text.pretrained = "";
  c.tokenizer.type = TokenizerType::sentencepiece;
  c.tokenizer.path = "ünïcode/päth.model";
  for (const Config& original : {Config{}, c}) {
    const std::string text = dump_config(original);
    const Config back = parse_config(text, "dump.yaml");
    EXPECT_EQ(back, original) << text;
    EXPECT_EQ(dump_config(back), text);
  }
}

TEST(Dump, ListsEveryKeyWithAComment) {
  const std::string text = dump_config(Config{});
  EXPECT_NE(text.find("\n  vision:  # ViT image encoder\n"), std::string::npos) << text;
  EXPECT_NE(text.find("    patch_size: 16"), std::string::npos) << text;
  EXPECT_NE(text.find("  lr: 0.0003"), std::string::npos) << text;
  for (const auto& key : all_keys()) {
    const std::string leaf = key.substr(key.rfind('.') + 1);
    EXPECT_NE(text.find(leaf + ": "), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace xmodal::config
