// The training loop end to end on a tiny scenes set: accumulation, exact resume, early
// stopping, checkpoints that never load half-written, NaN handling.
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
#include <functional>
#include <random>
#include <thread>
#include <tuple>

#include "../support/event_reader.h"
#include "../support/fixtures.h"
#include "../support/predictions.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "../support/tiny_model.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/scenes.h"
#include "xmodal/eval/ceiling.h"
#include "xmodal/eval/run.h"
#include "xmodal/infer/predictor.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/io/tensorboard.h"
#include "xmodal/train/early_stopping.h"
#include "xmodal/train/tokenizer_training.h"
#include "xmodal/train/trainer.h"
#include "xmodal_test_paths.h"

namespace xmodal::train {
namespace {

namespace fs = std::filesystem;
using xmodal::testing::TempDir;
// The checkpoint layer is the trainer's vocabulary (TrainState, load_checkpoint, ...).
using namespace xmodal::checkpoint;  // NOLINT(build/namespaces)

// One tiny scenes set for the whole file (32 train scenes = 192 questions, 8 val scenes).
class Trainer : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    data_dir_ = new TempDir();
    data::build_scenes(xmodal::testing::tiny_scenes(data_dir_->path() / "scenes", 32, 8, 4, 5));
  }
  static void TearDownTestSuite() {
    delete data_dir_;
    data_dir_ = nullptr;
  }
  void SetUp() override { log::set_level(log::Level::warn); }
  void TearDown() override { log::set_level(log::Level::info); }

  // A tiny VQA model; `extra` is YAML appended (later keys win via --set-like overrides).
  config::Config tiny(const std::string& run, const std::vector<std::string>& sets = {}) const {
    auto all = xmodal::testing::tiny_run_sets((dir_.path() / run).string(),
                                              (data_dir_->path() / "scenes").string());
    all.insert(all.end(), sets.begin(), sets.end());
    return config::parse_config("task: vqa\n", "<test>", all);
  }

  static std::map<std::string, torch::Tensor> weights(const std::string& run_dir) {
    return load_checkpoint(latest_checkpoint(run_dir), {false}).model;
  }

  static TempDir* data_dir_;
  TempDir dir_;
};
TempDir* Trainer::data_dir_ = nullptr;

std::string first_file(const std::string& dir) {
  for (const auto& e : fs::directory_iterator(dir)) return e.path().string();
  return "";
}

TEST_F(Trainer, AccumulatingKMicroBatchesEqualsOneKTimesLargerBatch) {
  // A large adam_eps makes the update proportional to the gradient. With the usual 1e-8, Adam
  // turns gradients that are zero in exact arithmetic but rounding noise in practice (the key
  // bias of attention: softmax ignores it) into full-size steps of arbitrary sign.
  const std::vector<std::string> common = {"train.max_steps=2", "train.warmup=0",
                                           "train.schedule=constant", "train.grad_clip=0.5",
                                           "train.adam_eps=1"};
  auto a = common, b = common;
  a.insert(a.end(), {"train.batch_size=4", "train.grad_accum=3"});
  b.insert(b.end(), {"train.batch_size=12", "train.grad_accum=1"});
  const auto ra = train(tiny("accum", a));
  const auto rb = train(tiny("large", b));
  ASSERT_EQ(ra.losses.size(), 2u);
  ASSERT_EQ(rb.losses.size(), 2u);
  EXPECT_NEAR(ra.losses[0], rb.losses[0], 1e-5);
  EXPECT_NEAR(ra.losses[1], rb.losses[1], 1e-5);
  const auto wa = weights(ra.run_dir), wb = weights(rb.run_dir);
  ASSERT_EQ(wa.size(), wb.size());
  for (const auto& [name, t] : wa) {
    EXPECT_TRUE(torch::allclose(t, wb.at(name), 1e-5, 1e-6)) << name;
  }
}

TEST_F(Trainer, InterruptedAndResumedRunIsBitIdentical) {
  // Dropout on (the RNG state must be restored), accumulation, an epoch boundary (192 questions
  // = 12 steps of 2 x 8), validation and checkpoints in between.
  const std::vector<std::string> sets = {"train.max_steps=14",       "train.grad_accum=2",
                                         "train.eval_every=4",       "train.checkpoint_every=3",
                                         "model.vision.dropout=0.1", "model.text.dropout=0.1",
                                         "data.augment.hflip=true",  "train.keep_last=1"};
  const auto full = train(tiny("full", sets));
  ASSERT_EQ(full.losses.size(), 14u);

  TrainOptions stop;
  stop.stop_after_steps = 5;
  const auto cfg = tiny("parts", sets);
  const auto p1 = train(cfg, stop);
  EXPECT_TRUE(p1.interrupted);
  EXPECT_EQ(p1.step, 5);
  stop.resume = true;
  const auto p2 = train(cfg, stop);
  EXPECT_EQ(p2.step, 10);
  stop.stop_after_steps = 0;
  const auto p3 = train(cfg, stop);
  EXPECT_FALSE(p3.interrupted);
  EXPECT_EQ(p3.step, 14);

  std::vector<double> losses = p1.losses;
  losses.insert(losses.end(), p2.losses.begin(), p2.losses.end());
  losses.insert(losses.end(), p3.losses.begin(), p3.losses.end());
  ASSERT_EQ(losses.size(), full.losses.size());
  for (size_t i = 0; i < losses.size(); ++i)
    EXPECT_EQ(losses[i], full.losses[i]) << "step " << i + 1;
  const auto wf = weights(full.run_dir), wp = weights(p3.run_dir);
  for (const auto& [name, t] : wf) EXPECT_TRUE(torch::equal(t, wp.at(name))) << name;
  EXPECT_EQ(full.best_step, p3.best_step);
  EXPECT_EQ(full.best_metric, p3.best_metric);

  // metrics.jsonl of the resumed run has each step once.
  std::ifstream in(fs::path(p3.run_dir) / "metrics.jsonl");
  std::string line;
  std::vector<int64_t> train_steps;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    if (j["event"] == "train") train_steps.push_back(j["step"].get<int64_t>());
  }
  EXPECT_EQ(train_steps, (std::vector<int64_t>{14}));  // log_every 100: only the last step
  // keep_last 1 plus best.
  const auto steps = checkpoint_steps(p3.run_dir);
  EXPECT_LE(steps.size(), 2u);
  EXPECT_EQ(steps.back(), 14);
  EXPECT_TRUE(fs::exists(fs::path(p3.run_dir) / "best" / "state.json"));
}

// Every number of metrics.jsonl, as (tag, step) -> value, from its records (the test's own
// reading of the documented naming: EVENT/KEY, nested keys joined by '/', eval's metrics bare).
std::map<std::pair<std::string, int64_t>, double> jsonl_scalars(const std::string& path) {
  std::map<std::pair<std::string, int64_t>, double> out;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    const auto j = nlohmann::json::parse(line);
    const int64_t step = j["step"].get<int64_t>();
    const std::string event = j["event"].get<std::string>();
    std::function<void(const nlohmann::json&, const std::string&)> walk =
        [&](const nlohmann::json& v, const std::string& tag) {
          if (v.is_object()) {
            for (const auto& [k, inner] : v.items()) walk(inner, tag + "/" + k);
          } else if (v.is_number()) {
            EXPECT_TRUE(out.emplace(std::make_pair(tag, step), v.get<double>()).second)
                << tag << " twice at step " << step;
          }
        };
    for (const auto& [k, v] : j.items()) {
      if (k != "event" && k != "step") walk(v, k == "metrics" ? event : event + "/" + k);
    }
  }
  return out;
}

// Reads RUN_DIR/tb/'s one event file with the test reader (every CRC checked) and expects each
// scalar of metrics.jsonl in it once, with the same value; returns the events' scalars.
std::map<std::pair<std::string, int64_t>, double> check_events_against_metrics(
    const std::string& run_dir) {
  const std::string file = first_file((fs::path(run_dir) / "tb").string());
  const auto events = xmodal::testing::read_tensorboard_events(file);
  std::map<std::pair<std::string, int64_t>, double> from_events;
  if (events.empty()) {
    ADD_FAILURE() << file << ": no events";
    return from_events;
  }
  EXPECT_EQ(events[0].file_version, "brain.Event:2");
  int64_t last_step = -1;
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_TRUE(events[i].file_version.empty());
    EXPECT_GE(events[i].step, last_step) << "steps go back at event " << i;
    last_step = events[i].step;
    EXPECT_GT(events[i].wall_time, 1.7e9);
    for (const auto& v : events[i].values) {
      EXPECT_TRUE(from_events.emplace(std::make_pair(v.tag, events[i].step), v.simple_value).second)
          << v.tag << " twice at step " << events[i].step;
    }
  }
  const auto expected = jsonl_scalars((fs::path(run_dir) / "metrics.jsonl").string());
  EXPECT_EQ(from_events.size(), expected.size());
  for (const auto& [key, value] : expected) {
    const auto it = from_events.find(key);
    if (it == from_events.end()) {
      ADD_FAILURE() << key.first << " at step " << key.second << " is not in " << file;
    } else {
      EXPECT_EQ(it->second, static_cast<float>(value)) << key.first << " at step " << key.second;
    }
  }
  std::map<std::string, std::pair<int, double>> tags;  // events, last value
  for (const auto& [key, value] : from_events) tags[key.first] = {tags[key.first].first + 1, value};
  for (const auto& [tag, n] : tags) {
    std::printf("  %-32s %5d events, last %.6g\n", tag.c_str(), n.first, n.second);
  }
  std::printf("%s: %zu events, %zu scalars (metrics.jsonl: %zu)\n", file.c_str(), events.size(),
              from_events.size(), expected.size());
  return from_events;
}

// XMODAL_TB_RUN=RUN_DIR: the same check on any run, e.g. a quickstart run (skipped without it).
TEST(TensorBoardRun, EveryScalarOfTheRunGivenByXMODAL_TB_RUN) {
  const char* run = std::getenv("XMODAL_TB_RUN");
  if (run == nullptr) GTEST_SKIP() << "set XMODAL_TB_RUN=RUN_DIR";
  check_events_against_metrics(run);
}

TEST_F(Trainer, TensorBoardEventsHoldEveryScalarOfMetricsJsonlOnceAcrossResume) {
  const std::vector<std::string> sets = {"train.max_steps=8", "train.log_every=1",
                                         "train.eval_every=3", "train.checkpoint_every=3"};
  const auto cfg = tiny("tb", sets);
  TrainOptions stop;
  stop.stop_after_steps = 4;
  const auto p1 = train(cfg, stop);
  ASSERT_EQ(p1.step, 4);
  const fs::path tb = fs::path(p1.run_dir) / "tb";
  ASSERT_TRUE(fs::is_directory(tb));
  const std::string file = first_file(tb.string());
  EXPECT_NE(fs::path(file).filename().string().find("events.out.tfevents."), std::string::npos);
  {
    // Steps past the checkpoint, as a killed run leaves them, and a killed writer's partial
    // record: the resumed run drops both.
    std::ofstream out(file, std::ios::app | std::ios::binary);
    out << io::tfrecord(io::encode_scalar_event({1.0, 99, {{"train/loss", 1.0f}}}));
    out << io::tfrecord(io::encode_scalar_event({1.0, 5, {{"train/loss", 2.0f}}})).substr(0, 20);
  }
  stop.resume = true;
  stop.stop_after_steps = 0;
  const auto p2 = train(cfg, stop);
  ASSERT_EQ(p2.step, 8);
  EXPECT_EQ(first_file(tb.string()), file);  // one file, continued

  const auto from_events = check_events_against_metrics(p2.run_dir);
  for (int64_t step = 1; step <= 8; ++step) {
    EXPECT_TRUE(from_events.count({"train/loss", step})) << step;
    EXPECT_TRUE(from_events.count({"train/lr", step})) << step;
  }
  EXPECT_TRUE(from_events.count({"eval/accuracy", 3}));
  EXPECT_TRUE(from_events.count({"eval/accuracy", 6}));
  EXPECT_TRUE(from_events.count({"end/train_s", 8}));
  EXPECT_FALSE(from_events.count({"train/loss", 99}));

  // train.tensorboard false: no event file.
  auto off = sets;
  off.push_back("train.tensorboard=false");
  const auto r = train(tiny("tb-off", off));
  EXPECT_FALSE(fs::exists(fs::path(r.run_dir) / "tb"));
}

TEST_F(Trainer, RefusesToOverwriteARunAndNeedsACheckpointToResume) {
  const auto cfg = tiny("once", {"train.max_steps=1"});
  TrainOptions resume;
  resume.resume = true;
  EXPECT_THROW(train(cfg, resume), std::runtime_error);
  train(cfg);
  try {
    train(cfg);
    FAIL() << "a second fresh run into the same directory must fail";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find("--resume"), std::string::npos) << e.what();
  }
}

TEST_F(Trainer, UnwritableRunDirFailsBeforeTraining) {
  const std::string file = dir_.write("plain-file", "x");
  auto cfg = tiny("unused");
  cfg.run.dir = file + "/run";
  try {
    train(cfg);
    FAIL();
  } catch (const std::runtime_error& e) {
    EXPECT_NE(std::string(e.what()).find("run directory " + file + "/run"), std::string::npos)
        << e.what();
  }
}

TEST_F(Trainer, NonFiniteLossStopsNamingTheStepAndKeepsTheLastCheckpoint) {
  const auto cfg = tiny(
      "nan", {"train.lr=1e30", "train.warmup=0", "train.schedule=constant", "train.grad_clip=0",
              "train.checkpoint_every=1", "train.weight_decay=0", "train.max_steps=6"});
  std::string message;
  try {
    train(cfg);
  } catch (const std::runtime_error& e) {
    message = e.what();
  }
  ASSERT_FALSE(message.empty()) << "a learning rate of 1e30 must blow up";
  EXPECT_NE(message.find(": loss is "), std::string::npos) << message;
  EXPECT_NE(message.find("last good checkpoint"), std::string::npos) << message;
  const auto last = latest_checkpoint(cfg.run.dir);
  ASSERT_FALSE(last.empty());
  const auto step = load_checkpoint(last).state.step;
  EXPECT_NE(message.find("step " + std::to_string(step + 1) + ":"), std::string::npos) << message;
}

TEST_F(Trainer, EarlyStoppingCountSurvivesResume) {
  // min_delta 10: only the first evaluation improves; patience 3 stops after evaluation 4.
  const std::vector<std::string> sets = {"train.eval_every=1", "train.max_steps=20",
                                         "train.early_stopping.patience=3",
                                         "train.early_stopping.min_delta=10"};
  const auto full = train(tiny("es_full", sets));
  EXPECT_TRUE(full.stopped_early);
  EXPECT_EQ(full.step, 4);
  EXPECT_EQ(full.best_step, 1);

  const auto cfg = tiny("es_parts", sets);
  TrainOptions stop;
  stop.stop_after_steps = 2;
  EXPECT_EQ(train(cfg, stop).step, 2);
  stop.resume = true;
  stop.stop_after_steps = 0;
  const auto rest = train(cfg, stop);
  EXPECT_TRUE(rest.stopped_early);
  EXPECT_EQ(rest.step, 4);  // would be 5 if the count had restarted
}

TEST_F(Trainer, SigtermFinishesTheStepWritesACheckpointAndReturns) {
  const auto cfg = tiny("signal", {"train.max_steps=1000000", "train.checkpoint_every=1000000"});
  std::thread killer([] {
    // Wait until train() has installed its handler, then let a few steps run.
    for (int i = 0; i < 2000; ++i) {
      struct sigaction current {};
      sigaction(SIGTERM, nullptr, &current);
      if (current.sa_handler != SIG_DFL) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    kill(getpid(), SIGTERM);
  });
  const auto r = train(cfg);
  killer.join();
  EXPECT_TRUE(r.interrupted);
  EXPECT_EQ(r.signal, SIGTERM);
  EXPECT_GT(r.step, 0);
  EXPECT_EQ(load_checkpoint(latest_checkpoint(cfg.run.dir)).state.step, r.step);
  struct sigaction after {};
  sigaction(SIGTERM, nullptr, &after);
  EXPECT_EQ(after.sa_handler, SIG_DFL);  // the previous handler is back
}

TEST_F(Trainer, EvalReproducesValidationAndPredictAndExplainWork) {
  const auto r = train(tiny("eval", {"train.max_steps=3", "train.eval_every=3"}));
  ASSERT_FALSE(r.best_checkpoint.empty());
  eval::EvalOptions o;
  o.checkpoint = r.run_dir + "/best";
  o.split = "val";
  const auto s = eval::run_eval(o);
  EXPECT_EQ(s.metrics.at("accuracy"), r.last_metrics.at("accuracy"));
  EXPECT_EQ(s.metrics.at("loss"), r.last_metrics.at("loss"));
  const auto results = nlohmann::json::parse(io::read_file(s.out_dir + "/results.json"));
  EXPECT_EQ(results.size(), 48u);  // 8 val scenes x 6 questions
  EXPECT_TRUE(results[0].contains("question_id") && results[0].contains("answer"));

  infer::Predictor predictor({r.run_dir, {}, 3});
  const std::string image = (data_dir_->path() / "scenes/images/val").string();
  std::string first_image;
  for (const auto& e : fs::directory_iterator(image)) {
    first_image = e.path().string();
    break;
  }
  const auto lines =
      testing::json_lines(predictor.predict({{first_image, "how many bags are there?"},
                                             {"/nonexistent.png", "is there a bag?"},
                                             {first_image, "  "},
                                             {first_image, "is there a coat?"}}));
  ASSERT_EQ(lines.size(), 4u);
  const auto ok = nlohmann::json::parse(lines[0]);
  EXPECT_EQ(ok["answers"].size(), 3u);
  EXPECT_TRUE(nlohmann::json::parse(lines[1]).contains("error"));
  EXPECT_TRUE(nlohmann::json::parse(lines[2]).contains("error"));
  EXPECT_TRUE(nlohmann::json::parse(lines[3]).contains("answers"));

  for (const std::string method : {"chefer", "rollout"}) {
    const auto e = predictor.explain({first_image, "how many bags are there?"}, method);
    EXPECT_EQ(e.grid, 2);  // 32 px / patch 16
    ASSERT_EQ(e.patch_weights.size(), 4u);
    double total = 0;
    for (double w : e.patch_weights) total += w;
    for (double w : e.token_weights) total += w;
    // Normalised over the words and the patches.
    EXPECT_GT(total, 0.0) << method;
    EXPECT_LE(total, 1.0 + 1e-9) << method;
    EXPECT_EQ(e.tokens.front(), "[CLS]");
    const auto png = (dir_.path() / (method + ".png")).string();
    infer::write_heat_map(first_image, e, png, 64);
    EXPECT_GT(fs::file_size(png), 100u);
  }
}

TEST_F(Trainer, PretrainedBertWithItsWordPieceVocabularyMakesASelfContainedCheckpoint) {
  // The tiny Hugging Face BERT: 402 embedding rows, but a 405-line vocab.txt.
  const std::string bert = std::string(XMODAL_TEST_DATA) + "/models/tiny_bert";
  const auto r =
      train(tiny("hf", {"tokenizer.type=wordpiece", "model.text.pretrained=" + bert,
                        "model.text.hidden=16", "model.text.layers=1", "model.text.heads=1",
                        "model.text.intermediate=64", "model.text.max_position=16",
                        "data.max_text_len=16", "train.max_steps=2", "train.checkpoint_every=2"}));
  ASSERT_FALSE(r.best_checkpoint.empty());
  const auto loaded = load_trained_model(r.run_dir);
  // The architecture details of config.json are now in the run's own config.
  EXPECT_EQ(loaded.config.model.text.vocab_size, 402);
  EXPECT_DOUBLE_EQ(loaded.config.model.text.layer_norm_eps, 1e-12);
  EXPECT_EQ(loaded.artifacts.tokenizer->vocab_size(), 405);
  EXPECT_EQ(loaded.artifacts.tokenizer->id_limit(), 402);
  // The checkpoint does not need the folder any more.
  auto moved = loaded.config;
  moved.model.text.pretrained = "/nonexistent";
  const auto checkpoint_files = load_checkpoint(loaded.checkpoint, {false}).files;
  EXPECT_TRUE(checkpoint_files.count("vocab.txt"));
  EXPECT_EQ(artifacts_from_files(moved, checkpoint_files, "c").tokenizer->vocab_size(), 405);
  // Training started from the pretrained word embeddings (rows that got no gradient are equal).
  const auto reference = io::load_safetensors(std::string(XMODAL_TEST_DATA) +
                                              "/models/bert_tiny_reference.safetensors");
  const auto trained = weights(r.run_dir).at("text.embeddings.word.weight");
  EXPECT_TRUE(
      torch::equal(trained[400], reference.at("bert.embeddings.word_embeddings.weight")[400]));
}

TEST_F(Trainer, SentencePieceTokenizerTrainedOnTheTrainingQuestions) {
  XMODAL_SKIP_WITHOUT_SENTENCEPIECE();
  const auto config_path = dir_.write("sp.yaml", config::dump_config(tiny("sp")));
  train::TokenizerTrainOptions o;
  o.config = config_path;
  o.vocab_size = 40;
  o.out_dir = (dir_.path() / "spm").string();
  const auto trained = train::train_tokenizer(o);
  EXPECT_EQ(trained.texts, 192);
  EXPECT_EQ(trained.vocab_size, 40);
  const auto r =
      train(tiny("sp", {"tokenizer.type=sentencepiece", "tokenizer.path=" + trained.model,
                        "train.max_steps=2", "train.checkpoint_every=2"}));
  const auto loaded = load_trained_model(r.run_dir);
  EXPECT_EQ(loaded.artifacts.tokenizer->vocab_size(), 40);
  const auto e = loaded.artifacts.tokenizer->encode("how many bags are there?", 16);
  EXPECT_EQ(e.ids[0], 2);  // <s> as [CLS]
  EXPECT_GT(std::count(e.mask.begin(), e.mask.end(), 1), 3);
  infer::Predictor predictor({r.run_dir, {}, 3});
  const auto explained = predictor.explain(
      {first_file((data_dir_->path() / "scenes/images/val").string()), "how many bags?"});
  EXPECT_EQ(explained.tokens.front(), "<s>");
}

TEST_F(Trainer, CountingTrainsEvaluatesAndPredicts) {
  const auto r = train(tiny("counting", {"task=counting", "model.head.max_count=3",
                                         "train.max_steps=3", "train.eval_every=3"}));
  for (const char* m :
       {"accuracy", "exact_match", "mae", "rmse", "f1_micro", "f1_macro", "map", "loss"}) {
    EXPECT_TRUE(r.last_metrics.count(m)) << m;
  }
  eval::EvalOptions o;
  o.checkpoint = r.run_dir;
  o.split = "val";
  const auto s = eval::run_eval(o);
  EXPECT_EQ(s.examples, 8);  // one per val scene
  EXPECT_EQ(s.metrics.at("accuracy"), r.last_metrics.at("accuracy"));
  EXPECT_NE(s.table.find("ankle boot"), std::string::npos) << s.table;
  const auto metrics = nlohmann::json::parse(io::read_file(s.out_dir + "/metrics.json"));
  EXPECT_EQ(metrics["per_category"].size(), 10u);
  std::ifstream predictions(s.out_dir + "/predictions.jsonl");
  std::string line;
  int lines = 0;
  while (std::getline(predictions, line)) {
    const auto j = nlohmann::json::parse(line);
    EXPECT_EQ(j["counts"].size(), 10u);
    ++lines;
  }
  EXPECT_EQ(lines, 8);
}

TEST_F(Trainer, ConvStemAndAuxiliaryCountingLoss) {
  const auto with = train(tiny("aux", {"model.vision.stem=conv", "model.vision.stem_width=8",
                                       "train.aux.counting=1", "train.max_steps=2"}));
  const auto without = train(
      tiny("noaux", {"model.vision.stem=conv", "model.vision.stem_width=8", "train.max_steps=2"}));
  EXPECT_NE(with.losses[0], without.losses[0]);  // the auxiliary loss is part of the objective
  const auto ckpt = load_checkpoint(latest_checkpoint(with.run_dir), {false});
  EXPECT_EQ(ckpt.files.count("aux_classes.txt"), 1u);
  EXPECT_TRUE(ckpt.model.count("aux_counting.presence.weight"));
  EXPECT_TRUE(ckpt.model.count("vision.stem.0.norm.running_var"));
  eval::EvalOptions o;
  o.checkpoint = with.run_dir;
  o.split = "val";
  EXPECT_EQ(eval::run_eval(o).metrics.at("accuracy"), with.last_metrics.at("accuracy"));
}

TEST_F(Trainer, AFrozenStemKeepsItsWeightsAndStatisticsWhileTheLayersAboveTrain) {
  const std::vector<std::string> conv = {"model.vision.stem=conv", "model.vision.stem_width=8"};
  auto with = [&](std::vector<std::string> sets) {
    sets.insert(sets.end(), conv.begin(), conv.end());
    return sets;
  };
  const auto start = train(tiny("stem_start", with({"train.max_steps=2"})));
  const auto source = load_checkpoint(latest_checkpoint(start.run_dir), {false}).model;
  const auto frozen = train(tiny("stem_frozen", with({"model.vision.init_from=" + start.run_dir,
                                                      "model.vision.freeze_stem=true",
                                                      "train.aux.locate=1", "train.max_steps=3"})));
  const auto after = load_checkpoint(latest_checkpoint(frozen.run_dir), {false}).model;
  int stem_tensors = 0;
  for (const auto& [name, tensor] : source) {
    if (name.rfind("vision.stem.", 0) != 0) continue;
    EXPECT_TRUE(torch::equal(after.at(name), tensor)) << name;  // running_mean/var included
    ++stem_tensors;
  }
  EXPECT_GE(stem_tensors, 6);
  EXPECT_FALSE(torch::equal(after.at("vision.layers.0.mlp.fc1.weight"),
                            source.at("vision.layers.0.mlp.fc1.weight")));
  EXPECT_EQ(after.at("aux_locate.weight").size(0), 20);  // leftmost and rightmost of 10
  // A stem with nothing loaded into it is refused.
  EXPECT_THROW(train(tiny("stem_random", with({"model.vision.freeze_stem=true"}))), ConfigError);
}

TEST_F(Trainer, DenseAuxiliaryLossForBothTasks) {
  const auto plain = train(tiny("plain", {"train.max_steps=2"}));
  const auto dense =
      train(tiny("dense", {"train.aux.dense=1", "data.group_by_image=true", "train.max_steps=2"}));
  EXPECT_NE(dense.losses[0], plain.losses[0]);
  const auto ckpt = load_checkpoint(latest_checkpoint(dense.run_dir), {false});
  EXPECT_EQ(ckpt.model.at("aux_dense.weight").size(0), 10);
  EXPECT_FALSE(ckpt.model.count("aux_counting.presence.weight"));  // only the head asked for
  eval::EvalOptions o;
  o.checkpoint = dense.run_dir;
  o.split = "val";
  EXPECT_EQ(eval::run_eval(o).metrics.at("accuracy"), dense.last_metrics.at("accuracy"));
  const auto counting =
      train(tiny("dense_counting", {"task=counting", "train.aux.dense=0.5", "train.max_steps=2"}));
  EXPECT_TRUE(std::isfinite(counting.losses[1]));
  EXPECT_TRUE(
      load_checkpoint(latest_checkpoint(counting.run_dir), {false}).model.count("aux_dense.bias"));
}

TEST_F(Trainer, ClassifyPretrainsAnEncoderThatInitialisesVqa) {
  // Pretrain the ViT on real Fashion-MNIST at 16 px (a 1x1 patch grid)...
  const auto pre =
      train(tiny("classify", {"task=classify", "data.dataset=fashion_mnist",
                              "data.root=/usr/share/datasets/fashion-mnist", "data.image_size=16",
                              "train.max_steps=2", "train.batch_size=16"}));
  for (const char* m : {"accuracy", "top5_accuracy", "loss"}) {
    EXPECT_TRUE(pre.last_metrics.count(m)) << m;
  }
  const auto source = weights(pre.run_dir);
  EXPECT_TRUE(source.count("head.weight"));
  EXPECT_FALSE(source.count("fusion.cls_token"));  // the ViT and a linear layer only
  EXPECT_FALSE(source.count("text.embeddings.word.weight"));
  eval::EvalOptions o;
  o.checkpoint = pre.run_dir;
  o.split = "val";
  const auto s = eval::run_eval(o);
  EXPECT_EQ(s.examples, 5000);
  EXPECT_EQ(s.metrics.at("accuracy"), pre.last_metrics.at("accuracy"));
  std::ifstream predictions(s.out_dir + "/predictions.jsonl");
  std::string line;
  ASSERT_TRUE(std::getline(predictions, line));
  const auto first = nlohmann::json::parse(line);
  EXPECT_TRUE(first.contains("label") && first.contains("target") && first.contains("score"));
  const std::string image =
      fs::directory_iterator(data_dir_->path() / "scenes/images/val")->path().string();
  infer::Predictor predictor({pre.run_dir, {}, 3});
  const auto labels =
      nlohmann::json::parse(testing::json_lines(predictor.predict({{image, ""}}))[0]);
  ASSERT_EQ(labels["labels"].size(), 3u) << labels.dump();
  EXPECT_THROW(predictor.explain({image, ""}, "rollout"), std::invalid_argument);
  // The ceiling this classifier permits on the scenes: every article labelled once.
  eval::CeilingOptions ceiling;
  ceiling.classifier = pre.run_dir;
  ceiling.root = (data_dir_->path() / "scenes").string();
  ceiling.split = "val";
  ceiling.batch_size = 5;  // several batches
  const auto c = eval::measure_ceiling(ceiling);
  int64_t labelled = 0;
  for (const auto& row : c.confusion) {
    for (int64_t n : row) labelled += n;
  }
  EXPECT_EQ(labelled, c.articles);
  EXPECT_GT(c.articles, c.questions / 6);  // at least one per scene
  EXPECT_EQ(c.unanswerable, 0);
  EXPECT_GE(c.metrics.at("accuracy"), 0.0);
  EXPECT_LE(c.metrics.at("accuracy"), 1.0);

  // ...then start VQA at 32 px (2x2) from it: with the encoder locked (freeze_steps -1; 10,
  // longer than the run, does the same), its weights are exactly the pretrained ones and the
  // position grid is interpolated.
  const auto frozen = train(tiny("frozen", {"model.vision.init_from=" + pre.run_dir,
                                            "model.vision.freeze_steps=-1", "train.max_steps=3"}));
  auto loaded = weights(frozen.run_dir);
  for (const auto& [name, tensor] : source) {
    if (name.rfind("vision.", 0) != 0 || name == "vision.position_embedding") continue;
    EXPECT_TRUE(torch::equal(loaded.at(name), tensor)) << name;
  }
  EXPECT_EQ(loaded.at("vision.position_embedding").sizes(), torch::IntArrayRef({1, 5, 16}));
  EXPECT_TRUE(torch::allclose(loaded.at("vision.position_embedding")[0][0],
                              source.at("vision.position_embedding")[0][0]));
  // Frozen for 1 step only: the encoder moves in step 2 (of 3: the cosine's last step has lr 0).
  const auto thawed = train(tiny("thawed", {"model.vision.init_from=" + pre.run_dir,
                                            "model.vision.freeze_steps=1", "train.max_steps=3"}));
  EXPECT_FALSE(torch::equal(weights(thawed.run_dir).at("vision.layers.0.mlp.fc1.weight"),
                            source.at("vision.layers.0.mlp.fc1.weight")));
  // Another architecture is refused with the tensor and both shapes.
  try {
    train(tiny("wide", {"model.vision.init_from=" + pre.run_dir, "model.vision.hidden=32",
                        "model.vision.heads=2"}));
    FAIL();
  } catch (const std::invalid_argument& e) {  // a config mistake: exit 2
    EXPECT_NE(std::string(e.what()).find("has shape"), std::string::npos) << e.what();
  }
  // A folder that does not exist is refused before the run folder is made.
  const auto missing = tiny("missing_init", {"model.vision.init_from=/nonexistent/run"});
  EXPECT_THROW(train(missing), std::invalid_argument);
  EXPECT_FALSE(fs::exists(missing.run.dir));
}

}  // namespace
}  // namespace xmodal::train
