// The scenes builder and the loader on a tiny built set (needs Debian's dataset-fashion-mnist,
// which scripts/setup.sh installs).
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <nlohmann/json.hpp>

#include <filesystem>
#include <fstream>
#include <regex>
#include <set>

#include "../support/temp_dir.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/scenes.h"
#include "xmodal/data/vqa.h"
#include "xmodal/data/vqa_answers.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/image.h"
#include "xmodal/tasks/counting.h"
#include "xmodal/tasks/task.h"
#include "xmodal/tasks/vqa.h"

namespace xmodal::data {
namespace {

namespace fs = std::filesystem;
using xmodal::testing::TempDir;

ScenesOptions tiny(const fs::path& out) {
  ScenesOptions o;
  o.out = out.string();
  o.train = 24;
  o.val = 6;
  o.test = 6;
  o.canvas = 48;
  o.item_min = 12;
  o.item_max = 18;
  o.seed = 7;
  return o;
}

std::map<std::string, std::string> all_files(const fs::path& root) {
  std::map<std::string, std::string> files;
  for (const auto& e : fs::recursive_directory_iterator(root)) {
    if (e.is_regular_file())
      files[fs::relative(e.path(), root).string()] = io::read_file(e.path().string());
  }
  return files;
}

TEST(Scenes, SameSeedSameBytesAndAnswersMatchTheInstances) {
  TempDir dir;
  build_scenes(tiny(dir.path() / "a"));
  build_scenes(tiny(dir.path() / "b"));
  const auto a = all_files(dir.path() / "a"), b = all_files(dir.path() / "b");
  EXPECT_EQ(a.size(), 3u * 4 + 24 + 6 + 6 + 2);  // + scenes.json, dataset_scenes.json
  EXPECT_TRUE(a == b);
  auto other = tiny(dir.path() / "c");
  other.seed = 8;
  build_scenes(other);
  EXPECT_FALSE(all_files(dir.path() / "c") == a);

  // The real readers read it, and every count/yes-no answer agrees with the instances.
  const std::string root = (dir.path() / "a").string();
  BadInputPolicy policy;
  const CocoSet coco = read_coco(root, "train", policy);
  const VqaSet vqa = read_vqa(root, "train", policy);
  EXPECT_EQ(coco.images.size(), 24u);
  EXPECT_EQ(vqa.questions.size(), 24u * 6);
  const auto& names = fashion_class_names();
  const auto& plurals = fashion_class_plurals();
  int checked = 0;
  for (const auto& q : vqa.questions) {
    const CocoImage& image = coco.images[coco.image_index.at(q.image_id)];
    EXPECT_EQ(q.image_path, image.path);
    EXPECT_TRUE(fs::exists(q.image_path));
    for (int c = 0; c < 10; ++c) {
      const int n = image.counts[coco.category_index.at(c + 1)];
      if (q.question == "how many " + plurals[c] + " are there?") {
        EXPECT_EQ(q.answers[0], std::to_string(n));
        EXPECT_EQ(q.answer_type, "number");
        ++checked;
      }
      const std::string article =
          std::string("aeiou").find(names[c][0]) != std::string::npos ? "an " : "a ";
      if (q.question == "is there " + article + names[c] + "?") {
        EXPECT_EQ(q.answers[0], n > 0 ? "yes" : "no");
        ++checked;
      }
    }
  }
  EXPECT_EQ(checked, 24 * 5);
}

// Partial captions (the default) name only classes of the scene, each with a quantity its count
// allows, and leave some out; the images and questions are those of a full-captions set.
TEST(Scenes, PartialCaptionsNameSomeClassesWithVagueQuantities) {
  TempDir dir;
  auto full = tiny(dir.path() / "full");
  full.captions = "full";
  build_scenes(tiny(dir.path() / "partial"));
  build_scenes(full);
  auto partial_files = all_files(dir.path() / "partial");
  auto full_files = all_files(dir.path() / "full");
  for (const auto& [name, bytes] : full_files) {
    if (name.find("captions_") == std::string::npos && name != "scenes.json") {
      EXPECT_EQ(partial_files.at(name), bytes) << name;
    }
  }
  EXPECT_EQ(full_files.at("scenes.json").find("\"captions\""), std::string::npos);  // as before
  EXPECT_NE(partial_files.at("scenes.json").find("\"captions\": \"partial\""), std::string::npos);

  const auto& names = fashion_class_names();
  const auto& plurals = fashion_class_plurals();
  std::string classes;
  for (int c = 0; c < 10; ++c) classes += (c ? "|" : "") + plurals[c] + "|" + names[c];
  const std::regex phrase("(?:^| )(at least one|one or two|a few|some|several|many) (" + classes +
                          ")(?=[ .,])");
  BadInputPolicy policy;
  const CocoSet coco = read_coco((dir.path() / "partial").string(), "train", policy);
  int captions = 0, leaving_out = 0;
  for (const auto& image : coco.images) {
    ASSERT_EQ(image.captions.size(), 5u);
    for (const auto& caption : image.captions) {
      std::set<int> named;
      for (std::sregex_iterator it(caption.begin(), caption.end(), phrase), end; it != end; ++it) {
        const std::string quantity = (*it)[1], noun = (*it)[2];
        const auto singular = std::find(names.begin(), names.end(), noun);
        const int c = static_cast<int>(singular != names.end()
                                           ? singular - names.begin()
                                           : std::find(plurals.begin(), plurals.end(), noun) -
                                                 plurals.begin());
        ASSERT_LT(c, 10) << caption;
        const int n = image.counts[coco.category_index.at(c + 1)];
        EXPECT_GE(n, 1) << caption << ": names an absent class";
        // each quantity word only where its range holds the count
        const bool fits = quantity == "at least one" ? true
                          : quantity == "one or two" ? n <= 2
                          : quantity == "a few"      ? n >= 2 && n <= 4
                          : quantity == "some"       ? n >= 2
                          : quantity == "several"    ? n >= 3
                                                     : n >= 4;  // many
        EXPECT_TRUE(fits) << caption << ": " << n << " " << noun;
        named.insert(c);
      }
      EXPECT_FALSE(named.empty()) << caption;
      int present = 0;
      for (int c = 0; c < 10; ++c) present += image.counts[coco.category_index.at(c + 1)] > 0;
      leaving_out += static_cast<int>(named.size()) < present;
      ++captions;
    }
  }
  EXPECT_EQ(captions, 24 * 5);
  EXPECT_GT(leaving_out, 0);  // some captions leave a present class out
}

struct LoaderFixture : ::testing::Test {
  TempDir dir;
  config::Config config;
  std::shared_ptr<const TaskData> data;
  std::shared_ptr<const text::Tokenizer> tokenizer;

  void SetUp() override {
    build_scenes(tiny(dir.path()));
    config.data.root = dir.path().string();
    config.data.image_size = 32;
    config.data.augment.hflip = true;
    config.data.augment.random_resized_crop = true;
    config.data.augment.color_jitter = 0.2;
    data = std::make_shared<TaskData>(tasks::load_split(config, "train"));
    std::vector<std::string> texts;
    for (const auto& e : data->examples) texts.insert(texts.end(), e.texts.begin(), e.texts.end());
    tokenizer = std::make_shared<text::WordTokenizer>(text::WordTokenizer::build(texts));
  }

  std::vector<Batch> epoch(int workers, int64_t epoch_number, int64_t first = 0) {
    auto o = loader_options(config, /*train=*/true);
    o.batch_size = 10;
    o.workers = workers;
    Loader loader(data, tokenizer, o);
    loader.start(epoch_number, first);
    std::vector<Batch> batches;
    while (auto b = loader.next()) batches.push_back(std::move(*b));
    EXPECT_EQ(loader.position().batch, loader.batches_per_epoch());
    return batches;
  }
};

void expect_same(const std::vector<Batch>& a, const std::vector<Batch>& b) {
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].ids, b[i].ids);
    EXPECT_TRUE(torch::equal(a[i].images, b[i].images));
    EXPECT_TRUE(torch::equal(a[i].input_ids, b[i].input_ids));
    ASSERT_EQ(a[i].targets.size(), b[i].targets.size());
    for (const auto& [name, target] : a[i].targets) {
      EXPECT_TRUE(torch::equal(target, b[i].target(name))) << name;
    }
  }
}

TEST_F(LoaderFixture, BatchesHaveTheContractShapes) {
  const auto batches = epoch(2, 0);
  ASSERT_EQ(batches.size(), 15u);  // 144 questions / 10, last one partial
  const Batch& b = batches[0];
  // Questions of the same scene in one batch share one decoded image.
  EXPECT_LE(b.images.size(0), 10);
  EXPECT_EQ(b.images.sizes().slice(1), torch::IntArrayRef({3, 32, 32}));
  EXPECT_EQ(b.image_index.sizes(), torch::IntArrayRef({10}));
  EXPECT_LT(b.image_index.max().item<int64_t>(), b.images.size(0));
  EXPECT_EQ(b.input_ids.sizes(), torch::IntArrayRef({10, 32}));
  EXPECT_EQ(b.attention_mask.sizes(), torch::IntArrayRef({10, 32}));
  EXPECT_EQ(b.token_type_ids.scalar_type(), torch::kLong);
  const auto& scores = b.target(tasks::kVqaScores);
  EXPECT_EQ(scores.sizes(), torch::IntArrayRef({10, data->num_classes()}));
  EXPECT_EQ(scores.sum(1).min().item<float>(), 1.0f);  // 10 identical answers -> score 1
  EXPECT_EQ(batches.back().size(), 4);
}

TEST_F(LoaderFixture, SameBatchesWhateverTheWorkersAndShuffledPerEpoch) {
  const auto serial = epoch(0, 3);
  expect_same(serial, epoch(1, 3));
  expect_same(serial, epoch(2, 3));
  EXPECT_NE(serial[0].ids, epoch(0, 4)[0].ids);
}

TEST_F(LoaderFixture, BatchesCanBeSavedForBackwardWithAndWithoutWorkers) {
  // inference tensors cannot enter autograd: data.workers 0 once failed the first step
  for (const int workers : {0, 2}) {
    const auto batches = epoch(workers, 0);
    ASSERT_FALSE(batches.empty());
    EXPECT_FALSE(batches[0].images.is_inference()) << workers << " workers";
    auto weight = torch::ones({1}, torch::requires_grad());
    (batches[0].images * weight).sum().backward();
    EXPECT_TRUE(weight.grad().defined());
  }
}

TEST_F(LoaderFixture, ResumingFromAPositionGivesTheSameRemainingBatches) {
  const auto full = epoch(2, 1);
  const auto resumed = epoch(2, 1, 6);
  expect_same(std::vector<Batch>(full.begin() + 6, full.end()), resumed);
}

// Decoded images kept across epochs change nothing in the batches (augmentation included:
// a cached image is read, never written), are served from memory after the first epoch,
// and stay within their budget.
TEST_F(LoaderFixture, ImageCacheGivesTheSameBatchesWithinItsBudget) {
  auto run = [&](int64_t cache_bytes, int workers, Loader::CacheStats* stats) {
    auto o = loader_options(config, /*train=*/true);
    o.batch_size = 10;
    o.workers = workers;
    o.image_cache_bytes = cache_bytes;
    Loader loader(data, tokenizer, o);
    std::vector<Batch> batches;
    for (int64_t e = 0; e < 2; ++e) {
      loader.start(e);
      while (auto b = loader.next()) batches.push_back(std::move(*b));
    }
    *stats = loader.cache_stats();
    EXPECT_GT(loader.cpu_seconds(), 0.0);
    return batches;
  };
  Loader::CacheStats off, on, small;
  const auto uncached = run(0, 2, &off);
  EXPECT_EQ(off.images + off.hits + off.misses, 0);
  const auto cached = run(int64_t{1} << 30, 2, &on);
  expect_same(uncached, cached);
  // the tiny scenes are grey: one byte per pixel
  std::set<std::string> images;
  for (const auto& e : data->examples) images.insert(e.image_path);
  EXPECT_EQ(on.images, static_cast<int64_t>(images.size()));
  EXPECT_EQ(on.bytes, on.images * 48 * 48);
  EXPECT_GE(on.hits, on.misses);  // the second epoch is all hits
  const auto limited = run(5 * 48 * 48, 0, &small);
  expect_same(uncached, limited);
  EXPECT_EQ(small.images, 5);
  EXPECT_EQ(small.bytes, 5 * 48 * 48);
}

TEST_F(LoaderFixture, CountingTargetsFromTheSameFiles) {
  config.task = config::Task::counting;
  config.train.early_stopping.metric = "accuracy";
  data = std::make_shared<TaskData>(tasks::load_split(config, "train"));
  EXPECT_EQ(data->num_classes(), 10);
  const auto batches = epoch(2, 0);
  const auto& counts = batches[0].target(tasks::kCountingCounts);
  EXPECT_EQ(counts.sizes(), torch::IntArrayRef({10, 10}));
  EXPECT_EQ(counts.scalar_type(), torch::kLong);
  EXPECT_GE(counts.sum(1).min().item<int64_t>(), 1);  // every scene has an item
}

TEST_F(LoaderFixture, GroupingByImageKeepsAScenesQuestionsTogether) {
  config.data.group_by_image = true;
  config.data.augment = {};  // no augmentation: each row must be its image, plainly resized
  const auto batches = epoch(2, 0);
  std::set<int64_t> seen;
  for (const auto& b : batches) {
    // 10 questions of scenes that have 6 each: at most 3 scenes per batch.
    EXPECT_LE(b.images.size(0), 3);
    for (int64_t i = 0; i < b.size(); ++i) {
      seen.insert(b.indices[i]);
      const auto& e = data->examples[b.indices[i]];
      std::mt19937_64 rng(0);
      const auto own = transform_image(io::read_image_rgb(e.image_path),
                                       loader_options(config, true).transform, rng);
      EXPECT_TRUE(torch::equal(b.images[b.image_index[i].item<int64_t>()], own.pixels));
    }
  }
  EXPECT_EQ(seen.size(), data->examples.size());  // every question once
  // Images are shuffled per epoch.
  EXPECT_NE(epoch(0, 0)[0].ids, epoch(0, 1)[0].ids);
  // Runs of at most 2 questions per image: more images per batch, every question still once.
  const auto distinct = [&](const std::vector<Batch>& all) {
    int64_t n = 0;
    for (const auto& b : all) n += b.images.size(0);
    return n;
  };
  config.data.group_size = 2;
  const auto pairs = epoch(2, 0);
  EXPECT_GE(distinct(pairs), distinct(batches) * 3 / 2);
  std::set<int64_t> again;
  for (const auto& b : pairs) again.insert(b.indices.begin(), b.indices.end());
  EXPECT_EQ(again.size(), data->examples.size());
}

TEST_F(LoaderFixture, DenseTargetsMarkEachObjectCentreInItsPatch) {
  config.train.aux.counting = 1;
  config.train.aux.dense = 1;
  config.model.vision.patch_size = 8;               // 32 / 8 = a 4x4 grid
  config.data.augment.random_resized_crop = false;  // keep every object in view
  data = std::make_shared<TaskData>(tasks::load_split(config, "train"));
  ASSERT_EQ(data->aux_class_names.size(), 10u);
  const auto batches = epoch(2, 0);
  for (const auto& b : batches) {
    ASSERT_EQ(b.aux_dense.sizes(), torch::IntArrayRef({b.size(), 16, 10}));
    // Every category present in the scene has its centre in at least one cell, and no cell
    // names an absent one.
    EXPECT_TRUE(torch::equal(b.aux_dense.amax(1).gt(0), b.aux_counts.gt(0)));
    // Each object marks one cell (two of one category may share a cell).
    const auto per_category = b.aux_dense.sum(1).to(torch::kLong);
    EXPECT_TRUE(per_category.le(b.aux_counts).all().item<bool>());
  }
  // Flipped samples mirror their cells: the same question's targets across epochs are either
  // equal or column-mirrored.
  config.data.augment.hflip = true;
  auto o = loader_options(config, true);
  Loader loader(data, tokenizer, o);
  int mirrored = 0;
  for (int64_t e = 0; e < 6; ++e) {
    const Batch a = loader.make_batch(e, 0);
    auto no_flip = config;
    no_flip.data.augment.hflip = false;
    Loader unflipped(data, tokenizer, loader_options(no_flip, true));
    const Batch b = unflipped.make_batch(e, 0);
    ASSERT_EQ(a.indices, b.indices);
    for (int64_t i = 0; i < a.size(); ++i) {
      const auto grid_a = a.aux_dense[i].view({4, 4, 10});
      const auto grid_b = b.aux_dense[i].view({4, 4, 10});
      if (!torch::equal(grid_a, grid_b)) {
        EXPECT_TRUE(torch::equal(grid_a, grid_b.flip({1})));
        ++mirrored;
      }
    }
  }
  EXPECT_GT(mirrored, 0);
}

TEST_F(LoaderFixture, LocateTargetsAreTheLeftmostAndRightmostArticlesAsTheScenesAnswerThem) {
  config.train.aux.locate = 1;
  config.data.augment.random_resized_crop = false;  // keep every object in view
  config.data.augment.color_jitter = 0;             // flipped or not: the only difference
  config.data.augment.hflip = false;
  data = std::make_shared<TaskData>(tasks::load_split(config, "train"));
  ASSERT_EQ(data->aux_class_names.size(), 10u);
  int checked = 0;
  const auto batches = epoch(2, 0);
  for (const auto& b : batches) {
    ASSERT_EQ(b.aux_locate.sizes(), torch::IntArrayRef({b.size(), 2}));
    EXPECT_TRUE(b.aux_locate.ge(0).all().item<bool>());  // every scene has an article
    for (int64_t i = 0; i < b.size(); ++i) {
      const auto& e = data->examples[b.indices[i]];
      const std::string& question = e.texts.at(0);
      const bool left = question.find("leftmost") != std::string::npos;
      if (!left && question.find("rightmost") == std::string::npos) continue;
      const auto category = b.aux_locate[i][left ? 0 : 1].item<int64_t>();
      EXPECT_EQ(normalize_answer(data->aux_class_names.at(category)),
                data::annotation_of<tasks::VqaAnnotation>(e).answers.at(0))
          << question;
      ++checked;
    }
  }
  EXPECT_GT(checked, 10);
  // A mirrored image swaps the two targets, as its question's left and right are swapped.
  config.data.augment.hflip = true;
  Loader flipping(data, tokenizer, loader_options(config, true));
  auto plain = config;
  plain.data.augment.hflip = false;
  Loader unflipped(data, tokenizer, loader_options(plain, true));
  int mirrored = 0;
  for (int64_t epoch_number = 0; epoch_number < 4; ++epoch_number) {
    const Batch a = flipping.make_batch(epoch_number, 0);
    const Batch b = unflipped.make_batch(epoch_number, 0);
    ASSERT_EQ(a.indices, b.indices);
    for (int64_t i = 0; i < a.size(); ++i) {
      const auto image_a = a.images[a.image_index[i].item<int64_t>()];
      const auto image_b = b.images[b.image_index[i].item<int64_t>()];
      if (torch::equal(image_a, image_b)) {
        EXPECT_TRUE(torch::equal(a.aux_locate[i], b.aux_locate[i]));
      } else {
        // Equal centres may order differently once mirrored; distinct ones swap exactly.
        EXPECT_TRUE(torch::equal(a.aux_locate[i], b.aux_locate[i].flip({0})) ||
                    a.aux_locate[i][0].item<int64_t>() == a.aux_locate[i][1].item<int64_t>() ||
                    b.aux_locate[i][0].item<int64_t>() == b.aux_locate[i][1].item<int64_t>())
            << a.aux_locate[i] << b.aux_locate[i];
        ++mirrored;
      }
    }
  }
  EXPECT_GT(mirrored, 0);
}

TEST_F(LoaderFixture, BadImagesFailWithThePathOrAreSkippedAndCounted) {
  auto broken = std::make_shared<TaskData>(*data);
  broken->examples[0].image_path = (dir.path() / "missing.png").string();
  std::ofstream(dir.path() / "corrupt.png") << "not a png";
  broken->examples[1].image_path = (dir.path() / "corrupt.png").string();
  auto o = loader_options(config, false);
  o.batch_size = 4;
  o.workers = 2;
  {
    Loader loader(broken, tokenizer, o);
    loader.start(0);
    try {
      loader.next();
      FAIL();
    } catch (const std::runtime_error& e) {
      EXPECT_NE(std::string(e.what()).find("missing.png: file not found"), std::string::npos)
          << e.what();
    }
  }
  o.skip_bad = true;
  Loader loader(broken, tokenizer, o);
  loader.start(0);
  const auto first = loader.next();
  EXPECT_EQ(first->size(), 2);
  EXPECT_EQ(first->skipped, 2);
  EXPECT_EQ(loader.skipped(), 2);

  // A batch made only of bad samples is passed over, not handed out empty.
  auto all_bad = std::make_shared<TaskData>(*data);
  for (int i = 0; i < 4; ++i)
    all_bad->examples[i].image_path = (dir.path() / "missing.png").string();
  o.shuffle = false;
  Loader skipping(all_bad, tokenizer, o);
  skipping.start(0);
  const auto next = skipping.next();
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->index, 1);
  EXPECT_EQ(next->size(), 4);
  EXPECT_EQ(skipping.skipped(), 4);
}

}  // namespace
}  // namespace xmodal::data
