#include "xmodal/config/config.h"

#include <gtest/gtest.h>

#include "xmodal_test_paths.h"

#include <filesystem>

#include "xmodal/config/loader.h"
#include "xmodal/core/error.h"

namespace xmodal::config {
namespace {

// The problems validate() reports for `c`, one per line ("" when valid).
std::string problems(const Config& c) {
  try {
    validate(c);
  } catch (const ConfigError& e) {
    return e.what();
  }
  return "";
}

TEST(Config, DefaultsAreValidAndMatchTheDesign) {
  const Config c;
  EXPECT_EQ(problems(c), "");
  EXPECT_EQ(c.task, Task::vqa);
  EXPECT_EQ(c.run.seed, 1234);
  EXPECT_EQ(c.data.image_size, 96);
  EXPECT_EQ(c.model.vision.patch_size, 16);
  EXPECT_EQ(c.model.fusion.mode, FusionMode::concat);
  EXPECT_DOUBLE_EQ(c.train.lr, 3.0e-4);
  EXPECT_EQ(c.train.schedule, Schedule::cosine);
  EXPECT_EQ(c.train.early_stopping.metric, "accuracy");
  EXPECT_EQ(c.eval.batch_size, 128);
}

TEST(Config, KeysFollowTheDesign) {
  const auto keys = all_keys();
  for (const char* key : {"task",
                          "run.dir",
                          "run.seed",
                          "run.threads",
                          "run.device",
                          "data.dataset",
                          "data.root",
                          "data.train_split",
                          "data.val_split",
                          "data.test_split",
                          "data.image_size",
                          "data.max_text_len",
                          "data.workers",
                          "data.on_bad_sample",
                          "tokenizer.type",
                          "tokenizer.path",
                          "model.vision.patch_size",
                          "model.vision.hidden",
                          "model.vision.layers",
                          "model.vision.heads",
                          "model.vision.mlp_dim",
                          "model.vision.dropout",
                          "model.vision.pretrained",
                          "model.text.hidden",
                          "model.text.layers",
                          "model.text.heads",
                          "model.text.intermediate",
                          "model.text.max_position",
                          "model.text.pretrained",
                          "model.fusion.mode",
                          "model.fusion.hidden",
                          "model.fusion.layers",
                          "model.fusion.heads",
                          "model.fusion.mlp_dim",
                          "model.head.hidden",
                          "model.head.max_count",
                          "train.batch_size",
                          "train.max_steps",
                          "train.epochs",
                          "train.lr",
                          "train.weight_decay",
                          "train.warmup",
                          "train.schedule",
                          "train.grad_clip",
                          "train.grad_accum",
                          "train.head_lr_mult",
                          "train.eval_every",
                          "train.checkpoint_every",
                          "train.keep_last",
                          "train.early_stopping.metric",
                          "train.early_stopping.mode",
                          "train.early_stopping.patience",
                          "train.early_stopping.min_delta",
                          "eval.batch_size"}) {
    EXPECT_NE(std::find(keys.begin(), keys.end(), key), keys.end()) << key;
  }
}

TEST(Config, EnumNamesRoundTrip) {
  EXPECT_EQ(enum_names<FusionMode>(),
            (std::vector<std::string>{"concat", "late", "image_only", "text_only"}));
  EXPECT_EQ(to_string(Schedule::linear), "linear");
  EXPECT_EQ(enum_from_string<Task>("counting"), Task::counting);
  EXPECT_EQ(enum_from_string<Task>("Counting"), std::nullopt);
}

TEST(Config, ScalarTextIsShortAndExact) {
  EXPECT_EQ(detail::scalar_text(3.0e-4), "0.0003");
  EXPECT_EQ(detail::scalar_text(1.0), "1.0");
  EXPECT_EQ(detail::scalar_text(1e-5), "1e-05");
  EXPECT_EQ(detail::scalar_text(0.1 + 0.2), "0.30000000000000004");
  EXPECT_EQ(detail::scalar_text(std::string("a\"b\\c\n")), "\"a\\\"b\\\\c\\n\"");
  EXPECT_EQ(detail::scalar_text(true), "true");
  EXPECT_EQ(detail::scalar_text(FusionMode::image_only), "image_only");
}

TEST(Validate, HeadsMustDivideWidths) {
  Config c;
  c.model.vision.heads = 5;
  c.model.fusion.hidden = 100;
  c.model.fusion.heads = 3;
  const std::string p = problems(c);
  EXPECT_NE(p.find("model.vision.hidden (192) must be divisible by model.vision.heads (5)"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("model.fusion.hidden (100) must be divisible by model.fusion.heads (3)"),
            std::string::npos)
      << p;
}

TEST(Validate, PatchMustDivideImageAndPositionsMustCoverText) {
  Config c;
  c.model.vision.patch_size = 14;
  c.data.max_text_len = 65;
  const std::string p = problems(c);
  EXPECT_NE(p.find("model.vision.patch_size (14) must divide data.image_size (96, set at default)"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("model.text.max_position (64) must be >= data.max_text_len (65"),
            std::string::npos)
      << p;
}

TEST(Validate, SineCosinePositionsNeedAWidthDivisibleByFour) {
  Config c;
  c.model.vision.positions = Positions::sincos;
  EXPECT_EQ(problems(c), "");  // 192
  c.model.vision.hidden = 198;
  c.model.vision.heads = 3;
  EXPECT_NE(problems(c).find("model.vision.positions sincos needs model.vision.hidden a multiple "
                             "of 4, got 198"),
            std::string::npos);
}

TEST(Validate, TokenizerFilesStepsWarmupDevice) {
  Config c;
  c.tokenizer.type = TokenizerType::wordpiece;
  c.train.max_steps = 0;
  c.train.epochs = 0;
  c.train.warmup = 2.5;
  c.run.device = "gpu0";
  const std::string p = problems(c);
  EXPECT_NE(p.find("tokenizer.type wordpiece needs tokenizer.path (a BERT vocab.txt)"),
            std::string::npos)
      << p;
  EXPECT_NE(p.find("both 0: nothing to train"), std::string::npos) << p;
  EXPECT_NE(p.find("train.warmup (2.5) is >= 1, so it counts steps"), std::string::npos) << p;
  EXPECT_NE(p.find("run.device: unknown device 'gpu0'"), std::string::npos) << p;
  c = Config{};
  c.tokenizer.type = TokenizerType::wordpiece;
  c.model.text.pretrained = "bert-base-uncased";  // vocab.txt comes with the model folder
  EXPECT_EQ(problems(c), "");
}

TEST(Validate, EarlyStoppingMetricMustExistForTheTaskWithTheRightMode) {
  Config c;
  c.train.early_stopping.metric = "acuracy";
  EXPECT_NE(problems(c).find("unknown metric 'acuracy' for task vqa (expected one of: accuracy, "
                             "accuracy_yes_no, accuracy_number, accuracy_other, loss); did you "
                             "mean accuracy?"),
            std::string::npos)
      << problems(c);
  c.train.early_stopping.metric = "loss";
  EXPECT_NE(problems(c).find("mode is max but loss is better when lower (set mode: min)"),
            std::string::npos)
      << problems(c);
  c.task = Task::counting;
  c.train.early_stopping = {"mae", MetricMode::min, 5, 0.0};
  EXPECT_EQ(problems(c), "");
}

TEST(Validate, ClassifyNeedsLabelledImagesAndInitNeedsAnEncoder) {
  Config c;
  c.task = Task::classify;
  EXPECT_NE(problems(c).find("task classify needs data.dataset fashion_mnist or image_folder, "
                             "not scenes"),
            std::string::npos)
      << problems(c);
  c.data.dataset = Dataset::fashion_mnist;
  EXPECT_EQ(problems(c), "");
  c.train.aux.dense = 1;
  EXPECT_NE(problems(c).find("no object instances"), std::string::npos) << problems(c);
  c.train.aux.dense = 0;
  c.train.aux.locate = 1;
  EXPECT_NE(problems(c).find("no object instances"), std::string::npos) << problems(c);
  c = Config();
  c.data.dataset = Dataset::image_folder;
  EXPECT_NE(problems(c).find("needs task: classify"), std::string::npos) << problems(c);
  c = Config();
  c.model.vision.freeze_steps = 10;
  EXPECT_NE(problems(c).find("set model.vision.init_from"), std::string::npos) << problems(c);
  c.model.vision.init_from = "runs/pretrain";
  EXPECT_EQ(problems(c), "");
  c.model.fusion.mode = FusionMode::text_only;
  c.train.aux.dense = 0.5;
  EXPECT_NE(problems(c).find("train.aux.dense needs the image encoder"), std::string::npos)
      << problems(c);
  c.train.aux.dense = 0;
  c.train.aux.locate = 0.5;
  EXPECT_NE(problems(c).find("train.aux.locate needs the image encoder"), std::string::npos)
      << problems(c);
}

TEST(Validate, ProblemsNameWhereTheKeyWasSet) {
  const std::string yaml = "model:\n  vision:\n    heads: 5\n";
  try {
    parse_config(yaml, "cfg.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(std::string(e.what()),
              "cfg.yaml:3: model.vision.hidden (192) must be divisible by model.vision.heads (5)");
  }
}

// Config-only checks fail in validate(), before a run writes anything (exit 2).
TEST(Config, PrecisionChecksAreConfigChecks) {
  Config c;
  c.train.precision = Precision::fp16;
  EXPECT_NE(problems(c).find("fp16 needs dynamic loss scaling"), std::string::npos) << problems(c);
  c.train.precision = Precision::bf16;
  EXPECT_EQ(problems(c), "");  // run.device auto: decided on the machine
  c.run.device = "cpu";
  EXPECT_EQ(problems(c), "");  // the CPU's bf16 support is checked by the trainer
  c.eval.precision = Precision::fp16;
  EXPECT_NE(problems(c).find("eval.precision fp16 is not provided"), std::string::npos);
  c.eval.precision = Precision::bf16;
  EXPECT_EQ(problems(c), "");
  c.eval.quantize = Quantize::int8;
  EXPECT_NE(problems(c).find("eval.precision bf16 and eval.quantize int8 exclude each other"),
            std::string::npos);
  // The fusion has its own dropout (it used to take model.vision.dropout).
  const Config d = parse_config("model:\n  fusion: {dropout: 0.1}\n", "d.yaml");
  EXPECT_DOUBLE_EQ(d.model.fusion.dropout, 0.1);
  EXPECT_DOUBLE_EQ(d.model.vision.dropout, 0.0);
  EXPECT_THROW(parse_config("model:\n  fusion: {dropout: 1.5}\n", "e.yaml"), ConfigError);
}

// Every shipped config loads, validates and survives a dump round trip.
TEST(Configs, EveryShippedConfigLoads) {
  const std::filesystem::path dir = std::filesystem::path(XMODAL_SOURCE_DIR) / "configs";
  int count = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir)) {
    if (entry.path().extension() != ".yaml") continue;
    SCOPED_TRACE(entry.path().string());
    // Folders::keep: the pretrained folders of vit_b16_bert_base.yaml are the user's to bring.
    const Config c = load_config(entry.path().string(), {}, Folders::keep);
    EXPECT_EQ(parse_config(dump_config(c), "dump.yaml", {}, Folders::keep), c);
    ++count;
  }
  EXPECT_GE(count, 4);
}

}  // namespace
}  // namespace xmodal::config
