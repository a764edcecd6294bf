// infer::build_index, ImageIndex and search_index with the checkpoint of an untrained tiny
// retrieval model: the files of a generation (the model's own embeddings, paths in order, the
// manifest with each file's size and CRC32), search against a brute force over those
// embeddings, --append (a new generation, old rows kept, leftovers swept, a version 1 index
// turned into a generation), the refusal of damaged or mismatched indexes naming the file, and
// the FAISS backends (skipped without FAISS).
#include "xmodal/infer/index.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <nlohmann/json.hpp>

#include <algorithm>
#include <filesystem>
#include <functional>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "../support/checkpoints.h"
#include "../support/fixtures.h"
#include "../support/scenes.h"
#include "../support/temp_dir.h"
#include "xmodal/checkpoint/artifacts.h"
#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/dataset.h"
#include "xmodal/data/scenes.h"
#include "xmodal/infer/retrieval.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/models/dual_encoder.h"
#include "xmodal/tasks/task.h"

namespace xmodal::infer {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;
using xmodal::testing::error_of;
using xmodal::testing::TempDir;

json read_json(const fs::path& path) { return json::parse(io::read_file(path.string())); }

// The folder of INDEX_DIR's current generation.
fs::path current(const fs::path& index) { return index / fs::read_symlink(index / "current"); }

class Index : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    shared_ = new TempDir();
    const auto scenes = shared_->path() / "scenes";
    auto fixture = xmodal::testing::retrieval_scenes(
        xmodal::testing::tiny_scenes(scenes, 4, 2, 1, 3), (shared_->path() / "run").string());
    images_ = std::move(fixture.images);
    checkpoint_ = std::move(fixture.checkpoint);
  }
  static void TearDownTestSuite() {
    delete shared_;
    shared_ = nullptr;
    images_.clear();
  }
  void SetUp() override { log::set_level(log::Level::error); }
  void TearDown() override { log::set_level(log::Level::info); }

  // Copies images_[i] to photos/<name> for each (i, name); returns the folder.
  std::string photos(const std::vector<std::pair<size_t, std::string>>& files) const {
    const auto folder = dir_.path() / "photos";
    for (const auto& [i, name] : files) {
      fs::create_directories((folder / name).parent_path());
      fs::copy_file(images_.at(i), folder / name, fs::copy_options::overwrite_existing);
    }
    return folder.string();
  }

  IndexOptions options(const std::string& images, const std::string& out = "index") const {
    IndexOptions o;
    o.checkpoint = checkpoint_;
    o.images = images;
    o.out = (dir_.path() / out).string();
    return o;
  }

  // The model's embeddings of image files [N, E], as a brute force computes them.
  static torch::Tensor model_embeddings(const std::vector<std::string>& paths) {
    auto m = checkpoint::load_trained_model(checkpoint_);
    torch::NoGradGuard no_grad;
    std::vector<torch::Tensor> pixels;
    for (const auto& p : paths) pixels.push_back(image_tensor(m, p));
    return models::embed_images(*m.model, torch::stack(pixels));
  }

  static std::vector<std::string> paths_of(const fs::path& generation) {
    return read_json(generation / "paths.json").get<std::vector<std::string>>();
  }
  static torch::Tensor embeddings_of(const fs::path& generation) {
    return io::load_safetensors((generation / "embeddings.safetensors").string()).at("embeddings");
  }

  static TempDir* shared_;
  static std::vector<std::string> images_;  // 6 scenes images, sorted
  static std::string checkpoint_;
  TempDir dir_;
};
TempDir* Index::shared_ = nullptr;
std::vector<std::string> Index::images_;
std::string Index::checkpoint_;

TEST_F(Index, AGenerationHoldsTheModelsEmbeddingsInPathOrderAndAChecksummedManifest) {
  const auto folder =
      photos({{0, "b.png"}, {1, "sub/a.png"}, {2, "C.PNG"}, {3, "notes.txt"}, {4, "d.jpeg.txt"}});
  const auto o = options(folder);
  const auto r = build_index(o);
  EXPECT_EQ(r.added, 3);
  EXPECT_EQ(r.skipped, 0);
  EXPECT_EQ(r.total, 3);
  EXPECT_TRUE(r.first_bad.empty()) << r.first_bad;

  EXPECT_EQ(fs::read_symlink(fs::path(o.out) / "current").string(), "gen-1");
  const auto gen = current(o.out);
  // recursively, by extension (any case), sorted, absolute
  const std::vector<std::string> expected_paths = {folder + "/C.PNG", folder + "/b.png",
                                                   folder + "/sub/a.png"};
  ASSERT_EQ(paths_of(gen), expected_paths);
  const auto e = embeddings_of(gen);
  const auto expected = model_embeddings({images_[2], images_[0], images_[1]});
  ASSERT_EQ(e.sizes(), expected.sizes());
  EXPECT_EQ(e.scalar_type(), torch::kFloat32);
  EXPECT_LT(xmodal::testing::max_abs_diff(e, expected), 1e-5);
  EXPECT_LT(xmodal::testing::max_abs_diff(e.norm(2, 1), torch::ones({3})), 1e-5);

  const auto manifest = read_json(gen / "manifest.json");
  EXPECT_EQ(manifest["format"], "xmodal-index");
  EXPECT_EQ(manifest["version"], 2);
  EXPECT_EQ(manifest["count"], 3);
  EXPECT_EQ(manifest["embed_dim"], e.size(1));
  EXPECT_EQ(manifest["backend"], "flat");
  EXPECT_EQ(manifest["checkpoint"], fs::absolute(checkpoint_).lexically_normal().string());
  EXPECT_EQ(manifest["model"], checkpoint_identity(checkpoint_));
  ASSERT_EQ(manifest["files"].size(), 2u) << manifest.dump();  // no faiss.index for flat
  for (const char* name : {"embeddings.safetensors", "paths.json"}) {
    const std::string bytes = io::read_file((gen / name).string());
    EXPECT_EQ(manifest["files"][name]["bytes"], bytes.size()) << name;
    EXPECT_EQ(manifest["files"][name]["crc32"], checkpoint::crc32_hex(bytes)) << name;
  }
  // the generation is all there is: no temporary folders or links left
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(o.out)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"current", "gen-1"}));
}

TEST_F(Index, SearchRanksTheImagesAsABruteForceOverTheirEmbeddings) {
  const auto o = options(photos({{0, "a.png"}, {1, "b.png"}, {2, "c.png"}, {3, "d.png"}}));
  build_index(o);
  const auto gen = current(o.out);
  const auto paths = paths_of(gen);
  const auto e = embeddings_of(gen).to(torch::kFloat64);

  auto m = checkpoint::load_trained_model(checkpoint_);
  const std::string text = "a bag at the top left.";
  torch::Tensor query;
  {
    torch::NoGradGuard no_grad;
    query = embed_texts(m, {text}, torch::kCPU).to(torch::kFloat64);
  }
  const auto scores = torch::matmul(e, query.squeeze(0)).contiguous();
  std::vector<size_t> order(paths.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return scores[static_cast<int64_t>(a)].item<double>() >
           scores[static_cast<int64_t>(b)].item<double>();
  });

  SearchOptions s;
  s.index = o.out;
  s.text = text;
  s.top_k = 3;
  const auto hits = search_index(s);
  ASSERT_EQ(hits.size(), 3u);
  for (size_t j = 0; j < hits.size(); ++j) {
    EXPECT_EQ(hits[j].rank, static_cast<int64_t>(j) + 1);
    EXPECT_EQ(hits[j].path, paths[order[j]]) << j;
    EXPECT_NEAR(hits[j].score, scores[static_cast<int64_t>(order[j])].item<double>(), 1e-5);
  }
  s.top_k = 100;  // more than the index holds: all of it
  EXPECT_EQ(search_index(s).size(), 4u);

  // an image query finds its own copy first, at cosine 1
  s.text.clear();
  s.image = images_[2];
  const auto self = search_index(s);
  EXPECT_EQ(fs::path(self.at(0).path).filename().string(), "c.png");
  EXPECT_NEAR(self.at(0).score, 1.0, 1e-5);

  // the same through ImageIndex (what serve holds): two queries at once
  const auto index = ImageIndex::open(o.out, checkpoint_identity(checkpoint_));
  EXPECT_EQ(index.size(), 4);
  EXPECT_EQ(index.backend(), "flat");
  const auto both =
      index.search(torch::cat({query.to(torch::kFloat32), query.to(torch::kFloat32)}), 2);
  ASSERT_EQ(both.size(), 2u);
  EXPECT_EQ(both[1].at(0).path, paths[order[0]]);
  EXPECT_EQ(both[1].at(1).path, paths[order[1]]);
}

TEST_F(Index, SearchOptionsAreChecked) {
  SearchOptions s;
  s.text = "a bag.";
  EXPECT_THROW(search_index(s), std::invalid_argument);  // no --index
  s.index = (dir_.path() / "nowhere").string();
  s.image = images_[0];
  EXPECT_THROW(search_index(s), std::invalid_argument);  // both --text and --image
  s.image.clear();
  s.top_k = 0;
  EXPECT_THROW(search_index(s), std::invalid_argument);
  s.top_k = 1;
  const std::string error = error_of([&] { search_index(s); });
  EXPECT_NE(error.find(s.index + " is not an xmodal index"), std::string::npos) << error;
}

TEST_F(Index, BuildOptionsAreChecked) {
  const auto folder = photos({{0, "a.png"}});
  auto o = options(folder);
  o.out.clear();
  EXPECT_THROW(build_index(o), std::invalid_argument);
  o = options(folder);
  o.split = "val";
  EXPECT_THROW(build_index(o), std::invalid_argument);  // both --images and --split
  o.images.clear();
  o.split.clear();
  EXPECT_THROW(build_index(o), std::invalid_argument);  // neither
  o = options(folder);
  o.backend = "annoy";
  EXPECT_THROW(build_index(o), std::invalid_argument);
  o = options((dir_.path() / "missing").string());
  try {
    build_index(o);
    FAIL() << "a missing folder was indexed";
  } catch (const std::invalid_argument& e) {
    EXPECT_NE(std::string(e.what()).find(o.images + " is not a folder"), std::string::npos)
        << e.what();
  }
  fs::create_directories(dir_.path() / "empty");
  o = options((dir_.path() / "empty").string());
  const std::string error = error_of([&] { build_index(o); });
  EXPECT_NE(error.find("no images found in " + o.images), std::string::npos) << error;
  EXPECT_FALSE(fs::exists(fs::path(o.out) / "current"));
}

TEST_F(Index, ImagesWhosePathIsNotUtf8AreSkippedAndNamed) {
  const auto folder = photos({{0, "a.png"}, {1, "b\xff.png"}});
  const auto r = build_index(options(folder));
  EXPECT_EQ(r.added, 1);
  EXPECT_EQ(r.skipped, 1);
  EXPECT_EQ(r.total, 1);
  EXPECT_NE(r.first_bad.find("the path is not UTF-8"), std::string::npos) << r.first_bad;
  EXPECT_EQ(paths_of(current(options(folder).out)), std::vector<std::string>{folder + "/a.png"});
}

TEST_F(Index, ASplitIndexesItsDistinctImagesInDataOrder) {
  auto o = options("");
  o.split = "val";
  const auto r = build_index(o);
  const auto m = checkpoint::load_trained_model(checkpoint_);
  std::vector<std::string> expected;
  for (const auto& e : tasks::load_split(m.config, "val").examples) {
    const auto p = fs::absolute(e.image_path).lexically_normal().string();
    if (std::find(expected.begin(), expected.end(), p) == expected.end()) expected.push_back(p);
  }
  ASSERT_EQ(expected.size(), 2u);  // 2 val scenes, several questions each
  EXPECT_EQ(r.total, 2);
  EXPECT_EQ(paths_of(current(o.out)), expected);
}

TEST_F(Index, AppendWritesTheNextGenerationKeepingTheOldRowsAndSweepsLeftovers) {
  const auto folder = photos({{0, "a.png"}, {1, "b.png"}});
  auto o = options(folder);
  build_index(o);
  const auto before = embeddings_of(current(o.out));
  const auto before_paths = paths_of(current(o.out));
  // what killed writers leave behind
  fs::create_directories(fs::path(o.out) / ".gen-7.tmp-12345");
  fs::create_directories(fs::path(o.out) / "gen-9");
  fs::create_symlink("gen-9", fs::path(o.out) / ".current.tmp-12345");

  photos({{2, "0.png"}, {3, "c.png"}});
  o.append = true;
  const auto r = build_index(o);
  EXPECT_EQ(r.added, 2);
  EXPECT_EQ(r.total, 4);
  EXPECT_EQ(fs::read_symlink(fs::path(o.out) / "current").string(), "gen-2");
  const auto gen = current(o.out);
  auto paths = paths_of(gen);
  // the old rows first, unchanged; the new ones after them, sorted
  ASSERT_EQ(paths.size(), 4u);
  EXPECT_EQ(std::vector<std::string>(paths.begin(), paths.begin() + 2), before_paths);
  EXPECT_EQ(paths[2], folder + "/0.png");
  EXPECT_EQ(paths[3], folder + "/c.png");
  const auto after = embeddings_of(gen);
  EXPECT_TRUE(torch::equal(after.narrow(0, 0, 2), before));
  EXPECT_LT(xmodal::testing::max_abs_diff(after.narrow(0, 2, 2),
                                          model_embeddings({images_[2], images_[3]})),
            1e-5);
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(o.out)) {
    names.push_back(entry.path().filename().string());
  }
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"current", "gen-2"}));

  // nothing new: nothing added, the same rows
  const auto again = build_index(o);
  EXPECT_EQ(again.added, 0);
  EXPECT_EQ(again.total, 4);
  EXPECT_TRUE(torch::equal(embeddings_of(current(o.out)), after));
  // without --append an existing index is refused
  o.append = false;
  EXPECT_THROW(build_index(o), std::invalid_argument);
}

// A version 1 index (the four files directly in INDEX_DIR), written here.
void write_version1(const fs::path& dir, const torch::Tensor& embeddings,
                    const std::vector<std::string>& paths, const std::string& identity) {
  fs::create_directories(dir);
  io::save_safetensors((dir / "embeddings.safetensors").string(), {{"embeddings", embeddings}});
  io::write_file_atomic((dir / "paths.json").string(), json(paths).dump());
  const json manifest = {{"format", "xmodal-index"},
                         {"version", 1},
                         {"checkpoint", "/somewhere/checkpoint"},
                         {"model", identity},
                         {"embed_dim", embeddings.size(1)},
                         {"count", embeddings.size(0)},
                         {"backend", "flat"}};
  io::write_file_atomic((dir / "manifest.json").string(), manifest.dump());
}

TEST_F(Index, AVersion1IndexIsReadAndAnAppendTurnsItIntoAGeneration) {
  // by hand, with no model: 4 unit vectors of width 3
  const auto dir = dir_.path() / "v1";
  const auto e = torch::tensor(
      {{1.0f, 0.0f, 0.0f}, {0.0f, 1.0f, 0.0f}, {0.0f, 0.6f, 0.8f}, {-1.0f, 0.0f, 0.0f}});
  write_version1(dir, e, {"/p/0.png", "/p/1.png", "/p/2.png", "/p/3.png"}, "crc32 0, 1 bytes");
  const auto index = ImageIndex::open(dir.string(), "");
  EXPECT_EQ(index.size(), 4);
  EXPECT_EQ(index.dim(), 3);
  EXPECT_EQ(index.checkpoint(), "/somewhere/checkpoint");
  const auto hits = index.search(torch::tensor({{0.0f, 0.8f, 0.6f}}), 3);
  ASSERT_EQ(hits.at(0).size(), 3u);
  EXPECT_EQ(hits[0][0].path, "/p/2.png");  // 0.48 + 0.48
  EXPECT_NEAR(hits[0][0].score, 0.96, 1e-6);
  EXPECT_EQ(hits[0][1].path, "/p/1.png");  // 0.8
  EXPECT_NEAR(hits[0][2].score, 0.0, 1e-6);
  EXPECT_EQ(hits[0][2].rank, 3);
  // the wrong width, the wrong model, a backend it lacks
  EXPECT_THROW(index.search(torch::ones({1, 4}), 1), std::invalid_argument);
  try {
    ImageIndex::open(dir.string(), "crc32 1, 1 bytes");
    FAIL() << "another model's index was opened";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("cannot be compared"), std::string::npos);
  }
  try {
    ImageIndex::open(dir.string(), "", "hnsw");
    FAIL() << "an hnsw search of a flat index";
  } catch (const std::invalid_argument& error) {
    EXPECT_NE(std::string(error.what()).find("has no hnsw index (built with backend flat)"),
              std::string::npos)
        << error.what();
  }

  // the checkpoint's own version 1 index of one image, appended to
  const auto folder = photos({{0, "a.png"}, {1, "b.png"}});
  const auto first = model_embeddings({images_[0]});
  auto o = options(folder, "v1-own");
  write_version1(o.out, first, {folder + "/a.png"}, checkpoint_identity(checkpoint_));
  o.append = true;
  const auto r = build_index(o);
  EXPECT_EQ(r.added, 1);  // a.png is indexed already
  EXPECT_EQ(r.total, 2);
  EXPECT_EQ(fs::read_symlink(fs::path(o.out) / "current").string(), "gen-1");
  for (const char* legacy : {"manifest.json", "embeddings.safetensors", "paths.json"}) {
    EXPECT_FALSE(fs::exists(fs::path(o.out) / legacy)) << legacy;
  }
  EXPECT_TRUE(torch::equal(embeddings_of(current(o.out)).narrow(0, 0, 1), first));
  EXPECT_EQ(paths_of(current(o.out)),
            (std::vector<std::string>{folder + "/a.png", folder + "/b.png"}));
}

// Rewrites `name` in a generation with `bytes` and lists its new size and CRC32 in the manifest,
// so that only the content is wrong.
void replace_checked(const fs::path& gen, const std::string& name, const std::string& bytes) {
  io::write_file_atomic((gen / name).string(), bytes);
  auto manifest = read_json(gen / "manifest.json");
  manifest["files"][name] = {{"bytes", bytes.size()}, {"crc32", checkpoint::crc32_hex(bytes)}};
  io::write_file_atomic((gen / "manifest.json").string(), manifest.dump());
}

void edit_manifest(const fs::path& gen, const std::function<void(json&)>& edit) {
  auto manifest = read_json(gen / "manifest.json");
  edit(manifest);
  io::write_file_atomic((gen / "manifest.json").string(), manifest.dump());
}

TEST_F(Index, DamagedIndexesAreRefusedNamingTheFile) {
  const auto folder = photos({{0, "a.png"}, {1, "b.png"}, {2, "c.png"}});
  const auto good = options(folder, "good").out;
  build_index(options(folder, "good"));
  const int64_t width = embeddings_of(current(good)).size(1);
  int n = 0;
  // a copy of the good index damaged by `damage`, opened: the error must hold `expected`
  const auto check = [&](const std::function<void(const fs::path&)>& damage,
                         const std::function<std::string(const fs::path&)>& expected) {
    const auto copy = dir_.path() / ("damaged-" + std::to_string(++n));
    fs::copy(good, copy, fs::copy_options::recursive | fs::copy_options::copy_symlinks);
    const auto gen = current(copy);
    damage(gen);
    SCOPED_TRACE(expected(gen));
    const std::string error = error_of([&] { ImageIndex::open(copy.string(), ""); });
    EXPECT_NE(error.find(expected(gen)), std::string::npos) << error;
  };
  const std::string embeddings = "embeddings.safetensors";

  check(
      [&](const fs::path& gen) {
        const auto bytes = io::read_file((gen / embeddings).string());
        io::write_file_atomic((gen / embeddings).string(), bytes.substr(0, bytes.size() - 5));
      },
      [&](const fs::path& gen) {
        return (gen / embeddings).string() + " has ";  // ... bytes, the manifest says ...
      });
  check(
      [&](const fs::path& gen) {
        auto bytes = io::read_file((gen / embeddings).string());
        bytes[bytes.size() - 3] ^= 0x40;  // a flipped bit in a float
        io::write_file_atomic((gen / embeddings).string(), bytes);
      },
      [&](const fs::path& gen) { return (gen / embeddings).string() + " checksum mismatch"; });
  check(
      [&](const fs::path& gen) {
        io::write_file_atomic((gen / "manifest.json").string(), "{\"format\": ");
      },
      [&](const fs::path& gen) {
        return (gen / "manifest.json").string() + ": not an xmodal index manifest";
      });
  check([&](const fs::path& gen) { edit_manifest(gen, [](json& m) { m["version"] = 3; }); },
        [&](const fs::path& gen) {
          return (gen / "manifest.json").string() +
                 ": index format version 3, this xmodal reads 1 to 2";
        });
  check([&](const fs::path& gen) { edit_manifest(gen, [](json& m) { m.erase("count"); }); },
        [&](const fs::path& gen) {
          return (gen / "manifest.json").string() + ": \"count\" must be an integer, missing";
        });
  check([&](const fs::path& gen) { edit_manifest(gen, [](json& m) { m["embed_dim"] = 7; }); },
        [&](const fs::path& gen) {
          return (gen / embeddings).string() + ": embeddings of width " + std::to_string(width) +
                 ", the manifest says embed_dim 7";
        });
  check([&](const fs::path& gen) { edit_manifest(gen, [](json& m) { m["count"] = 4; }); },
        [&](const fs::path& gen) {
          return gen.parent_path().string() +
                 ": the index's files disagree (3 embeddings, 3 paths, manifest count 4)";
        });
  check(
      [&](const fs::path& gen) {
        edit_manifest(gen, [](json& m) { m["files"]["../paths.json"] = m["files"]["paths.json"]; });
      },
      [&](const fs::path& gen) {
        return (gen / "manifest.json").string() + ": a malformed \"files\" entry";
      });
  check(
      [&](const fs::path& gen) {
        auto e = embeddings_of(gen).clone();
        e[1][5] = std::numeric_limits<float>::quiet_NaN();
        replace_checked(gen, embeddings, io::serialize_safetensors({{"embeddings", e}}));
      },
      [&](const fs::path& gen) {
        return (gen / embeddings).string() + ": embeddings that are not finite";
      });
  check(
      [&](const fs::path& gen) {
        replace_checked(
            gen, embeddings,
            io::serialize_safetensors({{"embeddings", embeddings_of(gen).to(torch::kFloat64)}}));
      },
      [&](const fs::path& gen) { return (gen / embeddings).string() + ": \"embeddings\" is F64"; });
  check([&](const fs::path& gen) { replace_checked(gen, "paths.json", "{\"a\": 1}"); },
        [&](const fs::path& gen) { return (gen / "paths.json").string() + ": not a JSON array"; });
  check(
      [&](const fs::path& gen) {
        const auto dir = gen.parent_path();
        fs::remove(dir / "current");
        fs::create_symlink("../elsewhere", dir / "current");
      },
      [&](const fs::path& gen) {
        return (gen.parent_path() / "current").string() + ": not a link to an index generation";
      });
  // and the one that was copied from is still whole
  EXPECT_EQ(ImageIndex::open(good, "").size(), 3);
  EXPECT_EQ(n, 12);
}

TEST_F(Index, AFaissBackendIsBuiltKeptOnAppendAndCheckedAgainstTheIndex) {
  if (!have_faiss()) GTEST_SKIP() << "this build has no FAISS (XMODAL_WITH_FAISS=OFF)";
  const auto folder = photos({{0, "a.png"}, {1, "b.png"}, {2, "c.png"}});
  auto o = options(folder);
  o.backend = "hnsw";
  build_index(o);
  auto gen = current(o.out);
  EXPECT_EQ(read_json(gen / "manifest.json")["backend"], "hnsw");
  EXPECT_TRUE(read_json(gen / "manifest.json")["files"].contains("faiss.index"));
  const auto approx = ImageIndex::open(o.out, "");
  const auto exact = ImageIndex::open(o.out, "", "flat");
  EXPECT_EQ(approx.backend(), "hnsw");
  EXPECT_EQ(exact.backend(), "flat");
  const auto queries = embeddings_of(gen);
  const auto a = approx.search(queries, 3), b = exact.search(queries, 3);
  for (size_t q = 0; q < 3; ++q) {
    ASSERT_EQ(a[q].size(), 3u);
    EXPECT_EQ(a[q][0].path, paths_of(gen)[q]);  // each finds itself
    for (size_t j = 0; j < 3; ++j) {
      EXPECT_EQ(a[q][j].path, b[q][j].path) << q << " " << j;
      EXPECT_NEAR(a[q][j].score, b[q][j].score, 1e-5);
    }
  }
  EXPECT_THROW(ImageIndex::open(o.out, "", "ivf"), std::invalid_argument);

  // --append with the default backend keeps the index's
  photos({{3, "d.png"}});
  o.append = true;
  o.backend = "flat";
  build_index(o);
  gen = current(o.out);
  EXPECT_EQ(read_json(gen / "manifest.json")["backend"], "hnsw");
  EXPECT_EQ(AnnIndex::load((gen / "faiss.index").string(), {}).size(), 4);

  // a FAISS index of another size, or unreadable, with a matching checksum
  replace_checked(gen, "faiss.index",
                  AnnIndex::build(SearchBackend::hnsw, queries.narrow(0, 0, 2), {}).serialize());
  std::string error = error_of([&] { ImageIndex::open(o.out, ""); });
  EXPECT_NE(error.find("faiss.index holds 2 vectors, the index 4"), std::string::npos) << error;
  const auto faiss_bytes = io::read_file((gen / "faiss.index").string());
  replace_checked(gen, "faiss.index", faiss_bytes.substr(0, 40));  // truncated
  error = error_of([&] { ImageIndex::open(o.out, ""); });
  EXPECT_NE(error.find((gen / "faiss.index").string() + ": not a readable FAISS index"),
            std::string::npos)
      << error;
  // the exact search does not read it
  EXPECT_EQ(ImageIndex::open(o.out, "", "flat").size(), 4);
}

}  // namespace
}  // namespace xmodal::infer
