// infer::Predictor on checkpoints written from untrained models (no training needed): the
// answer format of each task, order and error rows, batching, top-k, non-finite weights, and
// what explain refuses.
#include "xmodal/infer/predictor.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "../support/tiny_model.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/scenes.h"
#include "xmodal/models/factory.h"
#include "xmodal/text/factory.h"

namespace xmodal::infer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using xmodal::testing::TempDir;

class Predictor : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new TempDir();
    data::build_scenes(xmodal::testing::tiny_scenes(data_dir_->path() / "scenes", 4, 2, 1, 3));
    for (const auto& e : fs::directory_iterator(data_dir_->path() / "scenes/images/val")) {
      images_.push_back(e.path().string());
    }
    std::sort(images_.begin(), images_.end());
  }
  static void TearDownTestSuite() {
    delete data_dir_;
    data_dir_ = nullptr;
  }
  void SetUp() override { log::set_level(log::Level::error); }
  void TearDown() override { log::set_level(log::Level::info); }

  // A checkpoint of an untrained model of `task`; `edit` may change its weights first.
  std::string checkpoint(const std::string& task, const std::vector<std::string>& sets = {},
                         const std::function<void(models::ModelImpl&)>& edit = {}) const {
    std::vector<std::string> all = {"run.dir=" + (dir_.path() / task).string(), "run.threads=1",
                                    "data.root=" + (data_dir_->path() / "scenes").string(),
                                    "data.image_size=32", "model.head.max_count=3"};
    const auto tiny = xmodal::testing::tiny_model_sets();
    all.insert(all.end(), tiny.begin(), tiny.end());
    all.insert(all.end(), sets.begin(), sets.end());
    const auto c = config::parse_config("task: " + task + "\n", "<test>", all);
    const auto train = data::load_split(c, c.data.train_split);
    std::vector<std::string> texts;
    for (const auto& e : train.examples) texts.insert(texts.end(), e.texts.begin(), e.texts.end());
    checkpoint::Artifacts a;
    a.tokenizer = text::make_tokenizer(c, texts);
    a.class_names = train.class_names;
    torch::manual_seed(17);
    auto model = models::build_model(
        c, {a.tokenizer->vocab_size(), static_cast<int64_t>(a.class_names.size()), 0});
    if (edit) edit(*model);
    checkpoint::CheckpointContent content;
    content.model = checkpoint::state_tensors(*model);
    content.files = checkpoint::artifact_files(c, a);
    return checkpoint::write_checkpoint(c.run.dir, content);
  }

  static std::vector<json> parse(const std::vector<std::string>& lines) {
    std::vector<json> out;
    for (const auto& l : lines) out.push_back(json::parse(l));
    return out;
  }

  static TempDir* data_dir_;
  static std::vector<std::string> images_;
  TempDir dir_;
};
TempDir* Predictor::data_dir_ = nullptr;
std::vector<std::string> Predictor::images_;

TEST_F(Predictor, VqaAnswersInOrderWithAnErrorRowForEachBadInput) {
  infer::Predictor p({checkpoint("vqa"), {}, 3});
  const auto out = parse(p.predict({{images_[0], "how many bags are there?"},
                                    {"/nonexistent.png", "is there a bag?"},
                                    {images_[1], " \t "},
                                    {images_[1], "is there a coat?"}}));
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0]["image"], images_[0]);
  EXPECT_EQ(out[0]["text"], "how many bags are there?");
  ASSERT_EQ(out[0]["answers"].size(), 3u);
  double previous = 1.0;
  for (const auto& a : out[0]["answers"]) {  // best first, probabilities
    const double prob = a["probability"].get<double>();
    EXPECT_LE(prob, previous);
    EXPECT_GE(prob, 0.0);
    previous = prob;
  }
  EXPECT_NE(out[1]["error"].get<std::string>().find("/nonexistent.png"), std::string::npos);
  EXPECT_EQ(out[1]["text"], "is there a bag?");
  EXPECT_NE(out[2]["error"].get<std::string>().find("empty text"), std::string::npos);
  EXPECT_TRUE(out[3].contains("answers"));
}

TEST_F(Predictor, BatchesGiveTheAnswersOfSingleInputs) {
  const std::string ckpt = checkpoint("vqa");
  std::vector<Input> inputs;
  for (const auto& image : images_) {
    inputs.push_back({image, "how many shirts are there?"});
    inputs.push_back({image, "is there a bag?"});
  }
  infer::Predictor one({ckpt, {"eval.batch_size=1"}, 4});
  infer::Predictor many({ckpt, {"eval.batch_size=5"}, 4});
  const auto a = parse(one.predict(inputs));
  const auto b = parse(many.predict(inputs));
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    for (size_t k = 0; k < 4; ++k) {
      EXPECT_EQ(a[i]["answers"][k]["answer"], b[i]["answers"][k]["answer"]) << i;
      EXPECT_NEAR(a[i]["answers"][k]["probability"].get<double>(),
                  b[i]["answers"][k]["probability"].get<double>(), 1e-5)
          << i;
    }
  }
}

TEST_F(Predictor, CountingListsEveryCategoryInOrder) {
  infer::Predictor p({checkpoint("counting"), {}, 1});
  const auto out = parse(p.predict({{images_[0], "a shirt and a bag"}}));
  const auto& categories = out[0]["categories"];
  ASSERT_EQ(categories.size(), 10u);  // every Fashion-MNIST category, not top_k
  EXPECT_EQ(categories[0]["category"], "t-shirt");
  for (const auto& c : categories) {
    EXPECT_GE(c["count"].get<int64_t>(), 0);
    EXPECT_LE(c["count"].get<int64_t>(), 3);  // model.head.max_count
  }
}

TEST_F(Predictor, NonFiniteWeightsGiveNullProbabilitiesNotACrash) {
  const auto ckpt = checkpoint("vqa", {}, [](models::ModelImpl& m) {
    torch::NoGradGuard no_grad;
    for (auto& p : m.named_parameters()) {
      if (p.key().rfind("head.", 0) == 0) p.value().fill_(std::nan(""));
    }
  });
  infer::Predictor p({ckpt, {}, 2});
  const auto out = parse(p.predict({{images_[0], "is there a bag?"}}));
  ASSERT_EQ(out[0]["answers"].size(), 2u);
  EXPECT_TRUE(out[0]["answers"][0]["probability"].is_null());
}

TEST_F(Predictor, InvalidUtf8TextIsEchoedReplaced) {
  infer::Predictor p({checkpoint("vqa"), {}, 1});
  const auto out = parse(p.predict({{images_[0], "is there a \xff bag?"}}));
  EXPECT_EQ(out[0]["text"], "is there a \xEF\xBF\xBD bag?");
  EXPECT_TRUE(out[0].contains("answers"));
}

TEST_F(Predictor, ExplainNeedsTheConcatFusion) {
  infer::Predictor late({checkpoint("vqa", {"model.fusion.mode=late"}), {}, 1});
  try {
    late.explain({images_[0], "is there a bag?"});
    FAIL() << "late fusion explained";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("model.fusion.mode concat"), std::string::npos)
        << e.what();
  }
  infer::Predictor concat({checkpoint("counting"), {}, 1});
  EXPECT_THROW(concat.explain({images_[0], "a bag"}, "saliency"), std::invalid_argument);
  const auto e = concat.explain({images_[0], "a bag"}, "rollout");
  EXPECT_EQ(e.grid, 2);
  EXPECT_EQ(e.patch_weights.size(), 4u);
  EXPECT_EQ(e.tokens.front(), "[CLS]");
}

}  // namespace
}  // namespace xmodal::infer
