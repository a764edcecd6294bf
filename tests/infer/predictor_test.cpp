// infer::Predictor on checkpoints written from untrained models (no training needed): the
// answer format of each task, order and error rows, batching, top-k, non-finite weights, and
// what explain refuses.
#include "xmodal/infer/predictor.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <filesystem>

#include "../support/checkpoints.h"
#include "../support/predictions.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "../support/tiny_model.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/scenes.h"
#include "xmodal/infer/embed.h"
#include "xmodal/infer/index.h"
#include "xmodal/infer/prepared_input.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/models/factory.h"
#include "xmodal/tasks/task.h"
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
    return xmodal::testing::untrained_checkpoint(
        task, (dir_.path() / task).string(), (data_dir_->path() / "scenes").string(), sets, edit);
  }

  static std::vector<json> parse(const std::vector<infer::Prediction>& predictions) {
    std::vector<json> out;
    for (const auto& l : testing::json_lines(predictions)) out.push_back(json::parse(l));
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

// A result is a type: whether it failed is its own field, whatever its text says (the input
// "error" once made `xmodal predict` fail, when the result's JSON text was searched).
TEST_F(Predictor, ATextThatSaysErrorIsAnAnswerNotAFailure) {
  infer::Predictor p({checkpoint("vqa"), {}, 2});
  const auto out = p.predict({{images_[0], "error"}, {images_[0], "{\"error\": 1}"}});
  ASSERT_EQ(out.size(), 2u);
  for (const auto& r : out) {
    EXPECT_TRUE(r.ok()) << r.error;
    EXPECT_EQ(r.answer.kind, tasks::Answer::Kind::answers);
    EXPECT_EQ(r.answer.classes.size(), 2u);
  }
  const auto j = json::parse(testing::json_lines(out)[1]);
  EXPECT_EQ(j["text"], "{\"error\": 1}");
  EXPECT_FALSE(j.contains("error"));
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

TEST_F(Predictor, AHiddenPatchGetsNoRelevanceFromAnyMethod) {
  for (const std::string task : {"vqa", "counting", "retrieval"}) {
    infer::Predictor p({checkpoint(task), {}, 1});
    const std::string text = task == "vqa" ? "how many bags are there?" : "a bag in the middle.";
    const auto seen = p.prepare({images_[0], text});
    auto hidden = p.prepare({images_[0], text});
    hidden->hidden_patches = {0, 1, 0, 0};  // a 2x2 grid of 16-pixel patches
    for (const std::string method : {"rollout", "chefer"}) {
      SCOPED_TRACE(task + " " + method);
      const auto e = p.explain(*hidden, method);
      ASSERT_EQ(e.patch_weights.size(), 4u);
      EXPECT_EQ(e.patch_weights[1], 0.0);
      double total = 0, patches = 0;
      for (double w : e.patch_weights) patches += w;
      for (double w : e.token_weights) total += w;
      total += patches;
      EXPECT_NEAR(total, 1.0, 1e-9);
      EXPECT_GT(patches, 0.0);
      const auto open = p.explain(*seen, method);
      EXPECT_GT(open.patch_weights[1], 0.0);
      // target_scores gives what explain calls the probability, with and without the mask
      EXPECT_NEAR(p.target_scores({seen.get()}, open.target)[0], open.probability, 1e-5);
      EXPECT_NEAR(p.target_scores({hidden.get()}, e.target)[0], e.probability, 1e-5);
    }
    // the model does not see the hidden patch: its output differs
    const auto both = p.target_scores({seen.get(), hidden.get()}, 0);
    EXPECT_NE(both[0], both[1]);
    // a wrong number of flags is refused
    hidden->hidden_patches = {1, 0};
    EXPECT_THROW(p.explain(*hidden, "rollout"), std::invalid_argument);
  }
}

TEST_F(Predictor, GradientIsTheOldNameOfChefer) {
  infer::Predictor p({checkpoint("vqa"), {}, 1});
  const auto a = p.explain({images_[0], "is there a bag?"}, "gradient");
  const auto b = p.explain({images_[0], "is there a bag?"}, "chefer");
  EXPECT_EQ(a.method, "chefer");
  EXPECT_EQ(a.patch_weights, b.patch_weights);
  EXPECT_EQ(a.token_weights, b.token_weights);
}

TEST_F(Predictor, RetrievalGivesTheSimilarityAndRanksLabels) {
  PredictorOptions o{checkpoint("retrieval"), {}, 3};
  o.labels = {"bag", "coat", "sneaker"};
  infer::Predictor p(o);
  const auto out = parse(p.predict({{images_[0], "a bag in the middle."}, {images_[1], ""}}));
  ASSERT_EQ(out.size(), 2u);
  const double cosine = out[0]["similarity"].get<double>();
  EXPECT_LE(std::abs(cosine), 1.0 + 1e-6);
  for (const auto& j : out) {
    ASSERT_EQ(j["labels"].size(), 3u) << j.dump();
    double total = 0, previous = 2;
    for (const auto& l : j["labels"]) {
      total += l["probability"].get<double>();
      EXPECT_LE(l["probability"].get<double>(), previous);
      previous = l["probability"].get<double>();
    }
    EXPECT_NEAR(total, 1.0, 1e-5);
  }
  PredictorOptions vqa{checkpoint("vqa"), {}, 3};
  vqa.labels = {"bag"};
  EXPECT_THROW(infer::Predictor(vqa).predict({{images_[0], "x"}}), std::invalid_argument);
}

TEST_F(Predictor, EmbedWritesTheRetrievalEmbeddingsUnitLength) {
  EmbedOptions o;
  o.checkpoint = checkpoint("retrieval");
  o.images = {images_[0], images_[1]};
  o.texts = {"a bag.", "a coat at the top."};
  o.out = (dir_.path() / "e.safetensors").string();
  embed(o);
  const auto t = io::load_safetensors(o.out);
  ASSERT_TRUE(t.count("image_embeds") && t.count("text_embeds"));
  EXPECT_EQ(t.at("image_embeds").sizes(), torch::IntArrayRef({2, 256}));
  EXPECT_TRUE(torch::allclose(t.at("text_embeds").norm(2, 1), torch::ones({2}), 1e-5, 1e-5));
  // the same as the model's own embeddings of the same inputs
  auto loaded = checkpoint::load_trained_model(o.checkpoint);
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> pixels;
  for (const auto& path : o.images) pixels.push_back(image_tensor(loaded, path));
  EXPECT_TRUE(torch::allclose(models::embed_images(*loaded.model, torch::stack(pixels)),
                              t.at("image_embeds"), 1e-5, 1e-6));
  EXPECT_TRUE(
      torch::allclose(embed_texts(loaded, o.texts, torch::kCPU), t.at("text_embeds"), 1e-5, 1e-6));
}

TEST_F(Predictor, IndexRoundTripAppendBadImagesAndAForeignCheckpoint) {
  const auto ckpt = checkpoint("retrieval");
  const auto folder = dir_.path() / "photos";
  fs::create_directories(folder / "sub");
  fs::copy_file(images_[0], folder / "a.png");
  fs::copy_file(images_[1], folder / "sub" / "b.png");
  io::write_file_atomic((folder / "broken.jpg").string(), "not an image");
  IndexOptions o;
  o.checkpoint = ckpt;
  o.images = folder.string();
  o.out = (dir_.path() / "index").string();
  const auto r = build_index(o);
  EXPECT_EQ(r.added, 2);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_NE(r.first_bad.find("broken.jpg"), std::string::npos) << r.first_bad;
  EXPECT_THROW(build_index(o), std::invalid_argument);  // exists: needs --append

  SearchOptions s;
  s.index = o.out;
  s.image = images_[1];
  s.top_k = 5;
  auto hits = search_index(s);
  ASSERT_EQ(hits.size(), 2u);
  EXPECT_EQ(hits[0].rank, 1);
  EXPECT_EQ(fs::path(hits[0].path).filename(), "b.png");  // an indexed image finds itself
  EXPECT_NEAR(hits[0].score, 1.0, 1e-5);
  EXPECT_GE(hits[0].score, hits[1].score);
  s.image.clear();
  s.text = "a bag at the top left.";
  EXPECT_EQ(search_index(s).size(), 2u);

  // --append: only the new image is embedded
  fs::copy_file(fs::directory_iterator(data_dir_->path() / "scenes/images/train")->path(),
                folder / "c.png");
  o.append = true;
  const auto more = build_index(o);
  EXPECT_EQ(more.added, 1);
  EXPECT_EQ(more.total, 3);
  EXPECT_EQ(search_index(s).size(), 3u);

  // the approximate backends find what the exact one finds on so few vectors
  if (have_faiss()) {
    for (const std::string backend : {"ivf", "hnsw"}) {
      IndexOptions a = o;
      a.append = false;
      a.backend = backend;
      a.out = (dir_.path() / ("index-" + backend)).string();
      build_index(a);
      SearchOptions q = s;
      q.index = a.out;
      const auto approx = search_index(q);
      const auto exact = search_index(s);
      ASSERT_EQ(approx.size(), exact.size()) << backend;
      EXPECT_EQ(approx[0].path, exact[0].path) << backend;
      EXPECT_NEAR(approx[0].score, exact[0].score, 1e-5) << backend;
    }
  }

  // another checkpoint's weights: refused, for a query and for --append
  const auto other = checkpoint("retrieval", {"run.dir=" + (dir_.path() / "other").string()},
                                [](models::ModelImpl& m) {
                                  torch::NoGradGuard g;
                                  models::dual_encoder(m)->text_projection->weight.mul_(2);
                                });
  s.checkpoint = other;
  try {
    search_index(s);
    FAIL() << "a foreign checkpoint was accepted";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("cannot be compared"), std::string::npos) << e.what();
  }
  o.checkpoint = other;
  EXPECT_THROW(build_index(o), std::invalid_argument);

  // a folder of nothing but bad images fails; a VQA checkpoint is refused
  const auto bad = dir_.path() / "bad";
  fs::create_directories(bad);
  io::write_file_atomic((bad / "x.png").string(), "junk");
  IndexOptions b;
  b.checkpoint = ckpt;
  b.images = bad.string();
  b.out = (dir_.path() / "bad-index").string();
  EXPECT_THROW(build_index(b), std::runtime_error);
  b.checkpoint = checkpoint("vqa");
  EXPECT_THROW(build_index(b), std::invalid_argument);
}

}  // namespace
}  // namespace xmodal::infer
