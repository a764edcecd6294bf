// Smaller and faster models (docs/compression.md): train.distill end to end on the
// tiny scenes set (weight 0 is the undistilled run bit for bit, resume stays exact, a teacher of
// another task or label set is refused), and int8 checkpoints (xmodal quantize) that load
// without their float weights and answer as the model quantized in memory does.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "../support/predictions.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "../support/tiny_model.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/scenes.h"
#include "xmodal/eval/run.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/models/linear.h"
#include "xmodal/train/distill.h"
#include "xmodal/train/trainer.h"

namespace xmodal::train {
namespace {

namespace fs = std::filesystem;
using xmodal::testing::TempDir;

class Compress : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new TempDir();
    data::build_scenes(xmodal::testing::tiny_scenes(data_dir_->path() / "scenes", 32, 8, 4, 5));
    log::set_level(log::Level::warn);
    // One teacher for the file: the tiny model at twice the width, trained for 8 steps.
    teacher_ = new std::string(train(config("teacher",
                                            {"train.max_steps=8", "model.fusion.hidden=32",
                                             "model.fusion.mlp_dim=64", "model.head.hidden=32"},
                                            data_dir_->path()))
                                   .run_dir);
    log::set_level(log::Level::info);
  }
  static void TearDownTestSuite() {
    delete teacher_;
    delete data_dir_;
    data_dir_ = nullptr;
  }
  void SetUp() override { log::set_level(log::Level::warn); }
  void TearDown() override { log::set_level(log::Level::info); }

  static config::Config config(const std::string& run, const std::vector<std::string>& sets,
                               const fs::path& root, const std::string& task = "vqa") {
    auto all = xmodal::testing::tiny_run_sets((root / "runs" / run).string(),
                                              (data_dir_->path() / "scenes").string());
    all.insert(all.end(), sets.begin(), sets.end());
    return config::parse_config("task: " + task + "\n", "<test>", all);
  }
  config::Config tiny(const std::string& run, const std::vector<std::string>& sets = {},
                      const std::string& task = "vqa") const {
    return config(run, sets, dir_.path(), task);
  }
  static std::map<std::string, torch::Tensor> weights(const std::string& run_dir) {
    return checkpoint::load_checkpoint(checkpoint::latest_checkpoint(run_dir), {false}).model;
  }
  static std::string first_image() {
    for (const auto& e : fs::directory_iterator(data_dir_->path() / "scenes/images/val")) {
      return e.path().string();
    }
    return "";
  }

  static TempDir* data_dir_;
  static std::string* teacher_;
  TempDir dir_;
};
TempDir* Compress::data_dir_ = nullptr;
std::string* Compress::teacher_ = nullptr;

TEST_F(Compress, DistillationWeightZeroTrainsExactlyAsNoTeacher) {
  const auto plain = train(tiny("plain"));
  const auto zero =
      train(tiny("zero", {"train.distill.teacher=" + *teacher_, "train.distill.weight=0"}));
  ASSERT_EQ(plain.losses.size(), zero.losses.size());
  for (size_t i = 0; i < plain.losses.size(); ++i) EXPECT_EQ(plain.losses[i], zero.losses[i]);
  const auto a = weights(plain.run_dir), b = weights(zero.run_dir);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) EXPECT_TRUE(torch::equal(t, b.at(name))) << name;
}

TEST_F(Compress, DistilledRunRecordsItsTeacherChangesTheLossAndResumesExactly) {
  const std::vector<std::string> sets = {"train.distill.teacher=" + *teacher_,
                                         "train.distill.weight=2", "train.distill.temperature=3",
                                         "train.max_steps=6", "train.checkpoint_every=2"};
  const auto plain = train(tiny("plain", {"train.max_steps=6"}));
  const auto full = train(tiny("full", sets));
  ASSERT_EQ(full.losses.size(), 6u);
  EXPECT_NE(full.losses[0], plain.losses[0]);  // the term is there
  EXPECT_GT(full.losses[0], plain.losses[0]);  // and positive (BCE against soft targets)

  const auto cfg = tiny("parts", sets);
  TrainOptions stop;
  stop.stop_after_steps = 3;
  const auto p1 = train(cfg, stop);
  stop.resume = true;
  stop.stop_after_steps = 0;
  const auto p2 = train(cfg, stop);
  std::vector<double> losses = p1.losses;
  losses.insert(losses.end(), p2.losses.begin(), p2.losses.end());
  ASSERT_EQ(losses.size(), full.losses.size());
  for (size_t i = 0; i < losses.size(); ++i) EXPECT_EQ(losses[i], full.losses[i]) << i;

  // teacher.json: which teacher, its identity and its config
  const auto content =
      checkpoint::load_checkpoint(checkpoint::latest_checkpoint(full.run_dir), {false, false});
  const auto record = nlohmann::json::parse(content.files.at(kTeacherFile));
  EXPECT_EQ(record["task"], "vqa");
  EXPECT_EQ(record["step"], 8);
  EXPECT_NE(record["model"].get<std::string>().find("crc32 "), std::string::npos);
  EXPECT_NE(record["config"].get<std::string>().find("hidden: 32"), std::string::npos);

  // Resuming with the teacher removed, or with another one, is refused.
  try {
    train(tiny("parts", {"train.max_steps=8"}), stop);
    FAIL() << "a distilled run resumed without its teacher";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("was distilled from a teacher"), std::string::npos)
        << e.what();
  }
}

TEST_F(Compress, TeacherOfAnotherTaskOrLabelSetIsRefusedByName) {
  const auto counting = train(tiny("counting", {}, "counting"));
  try {
    train(tiny("a", {"train.distill.teacher=" + counting.run_dir}));
    FAIL() << "a counting teacher was accepted for a vqa student";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("is a counting model; this run trains vqa"),
              std::string::npos)
        << e.what();
  }
  // The same task with fewer answers: another label set.
  const auto fewer = train(tiny("fewer", {"data.answer_top_k=3"}));
  try {
    train(tiny("b", {"train.distill.teacher=" + fewer.run_dir}));
    FAIL() << "a teacher with another label set was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("has another label set: 3 classes"), std::string::npos)
        << e.what();
  }
  EXPECT_FALSE(fs::exists(dir_.path() / "runs/b/checkpoints"));
}

TEST_F(Compress, QuantizedCheckpointLoadsWithoutFloatWeightsAndAnswersAsInMemoryInt8) {
  const auto run = train(tiny("run", {"train.max_steps=6"}));
  auto fp32 = checkpoint::load_trained_model(run.run_dir);
  auto in_memory = checkpoint::load_trained_model(run.run_dir);
  checkpoint::quantize_model(in_memory, config::Quantize::int8, c10::Device(c10::kCPU));
  EXPECT_EQ(in_memory.quantization, config::Quantize::int8);
  const std::string out = (dir_.path() / "int8").string();
  checkpoint::write_model_dir(out, in_memory);
  EXPECT_THROW(checkpoint::write_model_dir(out, in_memory), std::invalid_argument);  // exists

  // The file: int8 Linear weights with their scales, everything else float; smaller.
  const auto stored = io::load_safetensors(out + "/model.safetensors");
  EXPECT_EQ(stored.at("head.fc1.weight").scalar_type(), torch::kInt8);
  EXPECT_EQ(stored.at("head.fc1.weight_scale").scalar_type(), torch::kFloat32);
  EXPECT_EQ(stored.at("head.fc1.bias").scalar_type(), torch::kFloat32);
  EXPECT_EQ(stored.at("vision.norm.weight").scalar_type(), torch::kFloat32);
  EXPECT_LT(fs::file_size(out + "/model.safetensors"),
            fs::file_size(fs::path(fp32.checkpoint) / "model.safetensors"));

  auto loaded = checkpoint::load_trained_model(out);
  EXPECT_EQ(loaded.quantization, config::Quantize::int8);
  EXPECT_EQ(loaded.config.eval.quantize, config::Quantize::int8);
  {
    const auto batch_images = torch::randn({3, 3, 32, 32});
    const auto ids = torch::randint(1, 10, {3, 6});
    torch::NoGradGuard no_grad;
    const auto a = loaded.model->forward(batch_images, ids).at("logits");
    const auto b = in_memory.model->forward(batch_images, ids).at("logits");
    const auto c = fp32.model->forward(batch_images, ids).at("logits");
    EXPECT_TRUE(torch::equal(a, b));
    EXPECT_LT((a - c).abs().max().item<double>(), 0.1 * (1 + c.abs().max().item<double>()));
  }

  // Through the commands' paths: eval and predict on the int8 checkpoint, and --quantize int8
  // on the float one, give the same answers.
  eval::EvalOptions o;
  o.checkpoint = out;
  o.split = "val";
  o.out_dir = (dir_.path() / "eval-int8").string();
  const auto from_file = eval::run_eval(o);
  o.checkpoint = run.run_dir;
  o.out_dir = (dir_.path() / "eval-q").string();
  o.overrides = {"eval.quantize=int8"};
  const auto quantized = eval::run_eval(o);
  EXPECT_EQ(from_file.metrics.at("accuracy"), quantized.metrics.at("accuracy"));
  EXPECT_EQ(from_file.metrics.at("loss"), quantized.metrics.at("loss"));
  const auto summary = nlohmann::json::parse(io::read_file(o.out_dir + "/metrics.json"));
  EXPECT_EQ(summary["quantization"], "int8");

  infer::Predictor p8({out, {}, 3});
  infer::Predictor pq({run.run_dir, {"eval.quantize=int8"}, 3});
  const auto image = first_image();
  EXPECT_EQ(testing::json_lines(p8.predict({{image, "how many bags are there?"}})),
            testing::json_lines(pq.predict({{image, "how many bags are there?"}})));
  // explain follows the int8 model's gradients too
  const auto e = p8.explain({image, "how many bags are there?"}, "chefer");
  EXPECT_EQ(e.patch_weights.size(), 4u);

  // An int8 checkpoint cannot start training.
  EXPECT_THROW(train(tiny("from-int8", {"model.vision.init_from=" + out})), std::exception);
}

}  // namespace
}  // namespace xmodal::train
