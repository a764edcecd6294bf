#include "xmodal/data/scenes.h"

#include <fmt/format.h>
#include <nlohmann/json.hpp>
#include <opencv2/imgproc.hpp>

#include <algorithm>
#include <array>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <random>
#include <stdexcept>

#include "xmodal/core/error.h"
#include "xmodal/core/logging.h"
#include "xmodal/data/transforms.h"
#include "xmodal/data/vqa_answers.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/io/idx.h"
#include "xmodal/io/image.h"

namespace xmodal::data {
namespace {

namespace fs = std::filesystem;
using ojson = nlohmann::ordered_json;

// Integer in [lo, hi] from the generator's raw bits (library-independent, so the same seed
// gives the same set everywhere).
int uniform_int(std::mt19937_64& rng, int lo, int hi) {
  return lo + static_cast<int>(rng() % static_cast<uint64_t>(hi - lo + 1));
}

bool chance(std::mt19937_64& rng, int numerator, int denominator) {
  return static_cast<int>(rng() % static_cast<uint64_t>(denominator)) < numerator;
}

const std::array<const char*, 11> kNumberWords = {"no",  "one",   "two",   "three", "four", "five",
                                                  "six", "seven", "eight", "nine",  "ten"};

struct Item {
  int category;  // 0..9
  int x, y, size;
};

struct Source {
  io::IdxArray images;
  std::vector<std::vector<int64_t>> by_class;  // class -> indices of its images
};

Source load_source(const std::string& dir, const std::string& prefix) {
  Source s;
  s.images = io::read_idx((fs::path(dir) / (prefix + "-images-idx3-ubyte.gz")).string());
  const auto labels = io::read_idx((fs::path(dir) / (prefix + "-labels-idx1-ubyte.gz")).string());
  if (s.images.shape.size() != 3 || labels.count() != s.images.count()) {
    throw std::runtime_error(dir + ": " + prefix + " images and labels do not match");
  }
  s.by_class.resize(10);
  for (int64_t i = 0; i < labels.count(); ++i) {
    if (labels.data[i] > 9)
      throw std::runtime_error(dir + ": label " + std::to_string(labels.data[i]) + " out of range");
    s.by_class[labels.data[i]].push_back(i);
  }
  return s;
}

std::string with_article(const std::string& noun) {
  const char c = noun[0];
  return (c == 'a' || c == 'e' || c == 'i' || c == 'o' || c == 'u' ? "an " : "a ") + noun;
}

std::string count_phrase(int n, int category, bool words) {
  const auto& names = fashion_class_names();
  const auto& plurals = fashion_class_plurals();
  if (n == 1) return words ? with_article(names[category]) : "1 " + names[category];
  return (words && n <= 10 ? std::string(kNumberWords[n]) : std::to_string(n)) + " " +
         plurals[category];
}

std::string list_phrase(const std::vector<std::string>& parts) {
  std::string s;
  for (size_t i = 0; i < parts.size(); ++i) {
    if (i) s += (i + 1 == parts.size()) ? " and " : ", ";
    s += parts[i];
  }
  return s;
}

}  // namespace

const std::vector<std::string>& fashion_class_names() {
  static const std::vector<std::string> names = {"t-shirt", "trousers",  "pullover", "dress",
                                                 "coat",    "sandal",    "shirt",    "sneaker",
                                                 "bag",     "ankle boot"};
  return names;
}

const std::vector<std::string>& fashion_class_plurals() {
  static const std::vector<std::string> names = {"t-shirts", "trousers",   "pullovers", "dresses",
                                                 "coats",    "sandals",    "shirts",    "sneakers",
                                                 "bags",     "ankle boots"};
  return names;
}

std::string presence_question(int category) {
  return "is there " + with_article(fashion_class_names().at(category)) + "?";
}

std::string count_question(int category) {
  return "how many " + fashion_class_plurals().at(category) + " are there?";
}

namespace {

// One composed scene: 1-3 distinct classes, n articles drawn among them (each class at least
// once), placed with little overlap on a black canvas.
struct Scene {
  cv::Mat canvas;
  std::vector<int> classes;
  std::vector<Item> items;
  std::array<int, 10> counts{};
};

Scene compose_scene(const ScenesOptions& o, const Source& source, std::mt19937_64& rng) {
  constexpr int kArticleSide = 28;  // Fashion-MNIST images are 28 x 28
  Scene scene;
  const int n = uniform_int(rng, o.min_items, o.max_items);
  const int k = std::min(n, uniform_int(rng, 1, 3));
  auto& classes = scene.classes;
  while (static_cast<int>(classes.size()) < k) {
    const int c = uniform_int(rng, 0, 9);
    if (std::find(classes.begin(), classes.end(), c) == classes.end()) classes.push_back(c);
  }
  scene.canvas = cv::Mat::zeros(o.canvas, o.canvas, CV_8UC1);
  for (int i = 0; i < n; ++i) {
    Item item{i < k ? classes[i] : classes[uniform_int(rng, 0, k - 1)], 0, 0,
              uniform_int(rng, o.item_min, o.item_max)};
    // Place with little overlap: up to 50 tries for a spot overlapping no item by more than a
    // fifth of the smaller one.
    for (int attempt = 0; attempt < 50; ++attempt) {
      item.x = uniform_int(rng, 0, o.canvas - item.size);
      item.y = uniform_int(rng, 0, o.canvas - item.size);
      bool ok = true;
      for (const Item& other : scene.items) {
        const int w =
            std::min(item.x + item.size, other.x + other.size) - std::max(item.x, other.x);
        const int h =
            std::min(item.y + item.size, other.y + other.size) - std::max(item.y, other.y);
        const int smaller = std::min(item.size, other.size);
        if (w > 0 && h > 0 && w * h * 5 > smaller * smaller) ok = false;
      }
      if (ok) break;
    }
    const auto& pool = source.by_class[item.category];
    const int64_t index = pool[rng() % pool.size()];
    cv::Mat article(kArticleSide, kArticleSide, CV_8UC1,
                    const_cast<uint8_t*>(source.images.data.data() + index * 784));
    cv::Mat resized;
    cv::resize(article, resized, {item.size, item.size}, 0, 0, cv::INTER_AREA);
    cv::Mat region = scene.canvas(cv::Rect(item.x, item.y, item.size, item.size));
    cv::max(region, resized, region);
    ++scene.counts[item.category];
    scene.items.push_back(item);
  }
  return scene;
}

// Five "full" captions: two name every class with its count (digits, words), three a subset.
std::vector<std::string> full_captions(const Scene& scene, std::mt19937_64& rng) {
  const int k = static_cast<int>(scene.classes.size());
  std::vector<std::string> full_digits, full_words;
  for (int c : scene.classes) {
    full_digits.push_back(count_phrase(scene.counts[c], c, false));
    full_words.push_back(count_phrase(scene.counts[c], c, true));
  }
  std::vector<std::string> texts = {"a scene with " + list_phrase(full_digits) + ".",
                                    "there " +
                                        std::string(scene.items.size() == 1 ? "is " : "are ") +
                                        list_phrase(full_words) + "."};
  for (int t = 0; t < 3; ++t) {
    const int c = scene.classes[uniform_int(rng, 0, k - 1)];
    const char* templates[] = {"a picture showing {}.", "{} on a black background.",
                               "an image that contains {}."};
    texts.push_back(
        fmt::format(fmt::runtime(templates[t]), count_phrase(scene.counts[c], c, t == 1)));
  }
  return texts;
}

// A vague quantity for n >= 1 articles of a class, drawn among the words whose usual range
// holds n: "at least one" (1+), "one or two" (1-2), "a few" (2-4), "some" (2+), "several"
// (3+), "many" (4+). No word gives an exact count.
struct Phrase {
  std::string text;
  bool singular;  // "at least one coat": "there is ..."
};
Phrase vague_phrase(int n, int category, std::mt19937_64& rng) {
  struct Word {
    const char* text;
    int lo, hi;
    bool singular;
  };
  static const Word kWords[] = {{"at least one", 1, 99, true}, {"one or two", 1, 2, false},
                                {"a few", 2, 4, false},        {"some", 2, 99, false},
                                {"several", 3, 99, false},     {"many", 4, 99, false}};
  std::vector<const Word*> fitting;
  for (const Word& w : kWords) {
    if (n >= w.lo && n <= w.hi) fitting.push_back(&w);
  }
  const Word& w = *fitting[uniform_int(rng, 0, static_cast<int>(fitting.size()) - 1)];
  return {std::string(w.text) + " " +
              (w.singular ? fashion_class_names() : fashion_class_plurals())[category],
          w.singular};
}

// Five "partial" captions, one per template: each names a random non-empty subset of the
// scene's classes (each class with probability 1/2) with vague quantities, so the text alone
// tells neither the exact counts nor the classes it leaves out.
std::vector<std::string> partial_captions(const Scene& scene, std::mt19937_64& rng) {
  const int k = static_cast<int>(scene.classes.size());
  std::vector<std::string> texts;
  for (int t = 0; t < 5; ++t) {
    std::vector<int> named;
    while (named.empty()) {
      for (int c : scene.classes) {
        if (k == 1 || chance(rng, 1, 2)) named.push_back(c);
      }
    }
    std::vector<std::string> parts;
    bool one = false;
    for (int c : named) {
      Phrase p = vague_phrase(scene.counts[c], c, rng);
      if (parts.empty()) one = p.singular;
      parts.push_back(std::move(p.text));
    }
    const std::string list = list_phrase(parts);
    switch (t) {
      case 0:
        texts.push_back("a scene with " + list + ".");
        break;
      case 1:
        texts.push_back(std::string(one ? "there is " : "there are ") + list + ".");
        break;
      case 2:
        texts.push_back("a picture showing " + list + ".");
        break;
      case 3:
        texts.push_back(list + " on a black background.");
        break;
      default:
        texts.push_back("an image that contains " + list + ".");
        break;
    }
  }
  return texts;
}

// Where an item's centre is on a 3 x 3 grid of the canvas: its row and column, 0..2.
std::pair<int, int> grid_cell(const Item& item, int canvas) {
  const auto third = [&](int v) { return std::min(2, v * 3 / canvas); };
  return {third(item.y + item.size / 2), third(item.x + item.size / 2)};
}

std::string place_phrase(const Item& item, int canvas) {
  static const char* const kPlaces[3][3] = {
      {"at the top left", "at the top", "at the top right"},
      {"on the left", "in the middle", "on the right"},
      {"at the bottom left", "at the bottom", "at the bottom right"}};
  const auto [row, column] = grid_cell(item, canvas);
  return kPlaces[row][column];
}

// "a small bag", "a bag", "a large bag" (sizes item_min..item_max in thirds).
std::string sized_noun(const Item& item, const ScenesOptions& o) {
  const int span = o.item_max - o.item_min + 1;
  const int third = (item.size - o.item_min) * 3 / span;
  const std::string& name = fashion_class_names()[item.category];
  return third == 0 ? "a small " + name : third == 2 ? "a large " + name : with_article(name);
}

// Five retrieval captions that say where things are, so that most captions describe one scene
// (dataset_scenes.json): the articles from left to right with their row, from top to bottom
// with their column, each with its place on a 3 x 3 grid, each with its size and place, and one
// article's place and its position relative to another.
std::vector<std::string> retrieval_captions(const Scene& scene, const ScenesOptions& o,
                                            std::mt19937_64& rng) {
  static const char* const kRows[] = {"at the top", "in the middle", "at the bottom"};
  static const char* const kColumns[] = {"on the left", "in the centre", "on the right"};
  const auto& names = fashion_class_names();
  std::vector<const Item*> by_x, by_y;
  for (const Item& item : scene.items) by_x.push_back(&item);
  by_y = by_x;
  std::stable_sort(by_x.begin(), by_x.end(), [](const Item* a, const Item* b) {
    return 2 * a->x + a->size < 2 * b->x + b->size;
  });
  std::stable_sort(by_y.begin(), by_y.end(), [](const Item* a, const Item* b) {
    return 2 * a->y + a->size < 2 * b->y + b->size;
  });
  const auto noun = [&](const Item* item) { return with_article(names[item->category]); };
  std::vector<std::string> left_right, top_bottom, placed, sized;
  for (const Item* item : by_x) {
    left_right.push_back(noun(item) + " " + kRows[grid_cell(*item, o.canvas).first]);
    placed.push_back(noun(item) + " " + place_phrase(*item, o.canvas));
    sized.push_back(sized_noun(*item, o) + " " + place_phrase(*item, o.canvas));
  }
  for (const Item* item : by_y) {
    top_bottom.push_back(noun(item) + " " + kColumns[grid_cell(*item, o.canvas).second]);
  }
  const size_t n = scene.items.size();
  std::vector<std::string> texts = {"from left to right: " + list_phrase(left_right) + ".",
                                    "from top to bottom: " + list_phrase(top_bottom) + ".",
                                    list_phrase(placed) + ".",
                                    "a picture showing " + list_phrase(sized) + "."};
  if (n == 1) {
    texts.push_back(sized_noun(scene.items[0], o) + " on a black background, " +
                    place_phrase(scene.items[0], o.canvas) + ".");
  } else {
    const size_t a = rng() % n;
    size_t b = rng() % (n - 1);
    if (b >= a) ++b;
    const Item &p = scene.items[a], &q = scene.items[b];
    const int dx = (2 * q.x + q.size) - (2 * p.x + p.size);
    const int dy = (2 * q.y + q.size) - (2 * p.y + p.size);
    const char* relation = std::abs(dx) >= std::abs(dy)
                               ? (dx > 0 ? "to the left of" : "to the right of")
                               : (dy > 0 ? "above" : "below");
    texts.push_back(noun(&p) + " " + place_phrase(p, o.canvas) + ", " + relation + " " + noun(&q) +
                    ", among " + std::to_string(n) + " articles.");
  }
  return texts;
}

// The annotation files of one split, filled scene by scene.
struct SplitFiles {
  ojson images = ojson::array(), instances = ojson::array(), captions = ojson::array();
  ojson questions = ojson::array(), annotations = ojson::array();
  std::map<std::string, std::map<std::string, int64_t>> answer_counts;
  int64_t annotation_id = 1, caption_id = 1;

  // A question with ten identical human answers. Answers are written the way the official
  // evaluation normalises a prediction ("t-shirt" -> "t shirt"): it leaves ten identical human
  // answers untouched, so "t-shirt" could never be matched (VQA v2's own answers are stored
  // normalised too).
  void add_question(int64_t image_id, int64_t question_id, const std::string& text,
                    const std::string& raw_answer, const char* type, const char* question_type) {
    const std::string answer = normalize_answer(raw_answer);
    questions.push_back({{"image_id", image_id}, {"question", text}, {"question_id", question_id}});
    ojson answers = ojson::array();
    for (int a = 1; a <= 10; ++a) {
      answers.push_back({{"answer", answer}, {"answer_confidence", "yes"}, {"answer_id", a}});
    }
    annotations.push_back({{"question_type", question_type},
                           {"multiple_choice_answer", answer},
                           {"answers", answers},
                           {"image_id", image_id},
                           {"answer_type", type},
                           {"question_id", question_id}});
    ++answer_counts[type][answer];
  }

  void write(const fs::path& root, const std::string& split, uint64_t seed) const;
};

// Six questions: 3 number (2/3 about a present class), 2 yes/no (half present), 1 other.
void add_questions(SplitFiles& files, int64_t image_id, const Scene& scene, std::mt19937_64& rng) {
  const auto& names = fashion_class_names();
  const int k = static_cast<int>(scene.classes.size());
  int q = 0;
  const auto add = [&](const std::string& text, const std::string& answer, const char* type,
                       const char* question_type) {
    files.add_question(image_id, image_id * 10 + q++, text, answer, type, question_type);
  };
  const auto pick_class = [&](bool present) {
    if (present) return scene.classes[uniform_int(rng, 0, k - 1)];
    while (true) {
      const int c = uniform_int(rng, 0, 9);
      if (scene.counts[c] == 0) return c;
    }
  };
  for (int t = 0; t < 3; ++t) {
    const int c = pick_class(chance(rng, 2, 3));
    add(count_question(c), std::to_string(scene.counts[c]), "number", "how many");
  }
  for (int t = 0; t < 2; ++t) {
    const int c = pick_class(chance(rng, 1, 2));
    add(presence_question(c), scene.counts[c] ? "yes" : "no", "yes/no", "is there a");
  }
  const bool leftmost = chance(rng, 1, 2);
  const Item* pick = &scene.items[0];
  for (const Item& item : scene.items) {
    const int centre = 2 * item.x + item.size, best = 2 * pick->x + pick->size;
    if (leftmost ? centre < best : centre > best) pick = &item;
  }
  add(std::string("what is the ") + (leftmost ? "leftmost" : "rightmost") + " item?",
      names[pick->category], "other", "what is the");
}

void SplitFiles::write(const fs::path& root, const std::string& split, uint64_t seed) const {
  ojson categories = ojson::array();
  const auto& names = fashion_class_names();
  for (int c = 0; c < 10; ++c) {
    categories.push_back({{"supercategory", "fashion"}, {"id", c + 1}, {"name", names[c]}});
  }
  const ojson info = {
      {"description", "xmodal Fashion-scenes (Fashion-MNIST articles composed into scenes)"},
      {"version", "1.0"},
      {"seed", seed}};
  io::write_file_atomic((root / "annotations" / fmt::format("instances_{}.json", split)).string(),
                        ojson{{"info", info},
                              {"images", images},
                              {"annotations", instances},
                              {"categories", categories}}
                            .dump());
  io::write_file_atomic(
      (root / "annotations" / fmt::format("captions_{}.json", split)).string(),
      ojson{{"info", info}, {"images", images}, {"annotations", captions}}.dump());
  io::write_file_atomic(
      (root / fmt::format("v2_OpenEnded_mscoco_{}_questions.json", split)).string(),
      ojson{{"info", info},
            {"task_type", "Open-Ended"},
            {"data_type", "scenes"},
            {"data_subtype", split},
            {"questions", questions}}
          .dump());
  io::write_file_atomic((root / fmt::format("v2_mscoco_{}_annotations.json", split)).string(),
                        ojson{{"info", info},
                              {"data_type", "scenes"},
                              {"data_subtype", split},
                              {"annotations", annotations}}
                            .dump());
}

// One split's scenes: images, then its annotation files.
ScenesSplitReport write_split(const ScenesOptions& o, const std::string& split, int count,
                              const Source& source, int split_number, ojson& retrieval_images) {
  std::mt19937_64 rng(mix_seed(o.seed, 0x5CE7E5, static_cast<uint64_t>(split_number)));
  const int64_t id_base = 1'000'000LL * split_number + 1;
  const fs::path root(o.out);
  const fs::path image_dir = root / "images" / split;
  fs::create_directories(image_dir);
  fs::create_directories(root / "annotations");
  SplitFiles files;
  for (int s = 0; s < count; ++s) {
    const int64_t image_id = id_base + s;
    const Scene scene = compose_scene(o, source, rng);
    const std::string file_name = fmt::format("{}_{:08d}.png", split, image_id);
    io::write_file_atomic((image_dir / file_name).string(), io::encode_png(scene.canvas));
    files.images.push_back(
        {{"id", image_id}, {"file_name", file_name}, {"width", o.canvas}, {"height", o.canvas}});
    for (const Item& item : scene.items) {
      files.instances.push_back({{"id", files.annotation_id++},
                                 {"image_id", image_id},
                                 {"category_id", item.category + 1},
                                 {"bbox", {item.x, item.y, item.size, item.size}},
                                 {"area", item.size * item.size},
                                 {"iscrowd", 0}});
    }
    // The full captions are always drawn from the scene stream, so that the images and
    // questions of a seed are the same for both kinds; partial ones have a stream of their own.
    std::vector<std::string> texts = full_captions(scene, rng);
    if (o.captions == "partial") {
      std::mt19937_64 caption_rng(mix_seed(o.seed, 0xCA9710, static_cast<uint64_t>(image_id)));
      texts = partial_captions(scene, caption_rng);
    }
    for (const auto& text : texts) {
      files.captions.push_back(
          {{"image_id", image_id}, {"id", files.caption_id++}, {"caption", text}});
    }
    add_questions(files, image_id, scene, rng);
    // Retrieval captions (the Karpathy layout, dataset_scenes.json) have a stream of their own.
    std::mt19937_64 retrieval_rng(mix_seed(o.seed, 0x7E7121, static_cast<uint64_t>(image_id)));
    ojson sentences = ojson::array();
    for (const auto& text : retrieval_captions(scene, o, retrieval_rng)) {
      sentences.push_back({{"raw", text}, {"imgid", retrieval_images.size()}});
    }
    retrieval_images.push_back({{"filepath", "images/" + split},
                                {"filename", file_name},
                                {"imgid", retrieval_images.size()},
                                {"cocoid", image_id},
                                {"split", split},
                                {"sentences", sentences}});
  }
  files.write(root, split, o.seed);

  ScenesSplitReport report{split, count, static_cast<int64_t>(files.questions.size()), {}};
  for (const auto& [type, answers] : files.answer_counts) {
    std::vector<std::pair<std::string, int64_t>> sorted(answers.begin(), answers.end());
    std::stable_sort(sorted.begin(), sorted.end(),
                     [](const auto& a, const auto& b) { return a.second > b.second; });
    report.answers.emplace_back(type, std::move(sorted));
  }
  return report;
}

// Writes the whole set into o.out (a fresh folder).
std::vector<ScenesSplitReport> write_scenes(const ScenesOptions& o) {
  const Source train_source = load_source(o.fashion_mnist, "train");
  const Source test_source = load_source(o.fashion_mnist, "t10k");
  ojson retrieval = ojson::array();
  std::vector<ScenesSplitReport> reports = {
      write_split(o, "train", o.train, train_source, 0, retrieval),
      write_split(o, "val", o.val, test_source, 1, retrieval),
      write_split(o, "test", o.test, test_source, 2, retrieval)};
  io::write_file_atomic((fs::path(o.out) / "dataset_scenes.json").string(),
                        ojson{{"images", retrieval}, {"dataset", "scenes"}}.dump());
  return reports;
}

// The options that define a set's bytes, as recorded in OUT/scenes.json.
// (No "captions" key for full captions: the sets made before partial ones are full sets.)
ojson scenes_manifest(const ScenesOptions& o) {
  ojson manifest = {{"generator", "xmodal data scenes"},
                    {"train", o.train},
                    {"val", o.val},
                    {"test", o.test},
                    {"canvas", o.canvas},
                    {"min_items", o.min_items},
                    {"max_items", o.max_items},
                    {"item_min", o.item_min},
                    {"item_max", o.item_max},
                    {"seed", o.seed}};
  if (o.captions != "full") manifest["captions"] = o.captions;
  manifest["retrieval_captions"] = "dataset_scenes.json";  // absent: a set made before them
  return manifest;
}

// A manifest with its "captions" key filled in (missing: a full set, made before partial ones).
ojson with_captions(ojson manifest) {
  if (manifest.is_object() && !manifest.contains("captions")) manifest["captions"] = "full";
  return manifest;
}

// A folder that only holds what `data scenes` writes (sets made before scenes.json existed).
bool only_scenes_files(const fs::path& dir) {
  std::error_code ec;
  for (fs::directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    const std::string name = it->path().filename().string();
    const bool known = name == "images" || name == "annotations" || name == "scenes.json" ||
                       name == "dataset_scenes.json" ||
                       (name.rfind("v2_", 0) == 0 && it->path().extension() == ".json");
    if (!known) return false;
  }
  return !ec;
}

}  // namespace

std::vector<ScenesSplitReport> build_scenes(const ScenesOptions& o) {
  if (o.min_items < 1 || o.max_items < o.min_items || o.max_items > 10) {
    throw std::invalid_argument(
        fmt::format("scenes: items per scene must satisfy 1 <= min ({}) <= max ({}) <= 10",
                    o.min_items, o.max_items));
  }
  if (o.item_min < 8 || o.item_max < o.item_min || o.item_max > o.canvas) {
    throw std::invalid_argument(
        fmt::format("scenes: item size {}:{} must satisfy 8 <= min <= max <= canvas ({})",
                    o.item_min, o.item_max, o.canvas));
  }
  if (o.captions != "partial" && o.captions != "full") {
    throw std::invalid_argument("scenes: captions must be partial or full, got '" + o.captions +
                                "'");
  }
  if (o.train < 1 || o.val < 1 || o.test < 1) {
    throw std::invalid_argument("scenes: every split needs at least one scene");
  }
  constexpr int64_t kMaxScenes = 10'000'000;  // ~30 GB of PNGs at 96 px; 2^31 would fill a disk
  if (o.train > kMaxScenes || o.val > kMaxScenes || o.test > kMaxScenes) {
    throw std::invalid_argument(fmt::format("scenes: at most {} scenes per split", kMaxScenes));
  }
  // An existing folder is never mixed into: the same options find the set already there, other
  // options need --overwrite (and a folder that is a scenes set), and the new set is built
  // beside it and swapped in whole, so an interrupted build leaves the old one.
  const fs::path out(o.out);
  std::error_code ec;
  const bool exists = fs::exists(out, ec);
  if (exists && !fs::is_directory(out, ec)) {
    throw OptionError("data scenes",
                      "{out} " + OptionError::literal(o.out) + " exists and is not a folder");
  }
  const bool empty = exists && fs::is_empty(out, ec);
  const ojson manifest = scenes_manifest(o);
  if (exists && !empty) {
    ojson old;
    try {
      old = ojson::parse(io::read_file((out / "scenes.json").string(), 1 << 20));
    } catch (const std::exception&) {
      old = nullptr;  // no manifest: a set made before it existed, or not a set at all
    }
    if (with_captions(old) == with_captions(manifest)) {
      log::info("[data] {} already holds this set (the same options, scenes.json); nothing to do",
                o.out);
      return {};
    }
    const bool a_set = old.is_object() || only_scenes_files(out);
    if (!o.overwrite || !a_set) {
      std::string differences;
      if (old.is_object()) {
        const ojson was = with_captions(old), now = with_captions(manifest);
        ojson keys = now;
        keys.update(was);
        for (const auto& [key, unused] : keys.items()) {
          const ojson a = was.value(key, ojson()), b = now.value(key, ojson());
          if (a != b) {
            differences += (differences.empty() ? "" : ", ") + key + " " + a.dump() + " there, " +
                           b.dump() + " now";
          }
        }
      }
      throw OptionError(
          "data scenes",
          "{out} " + OptionError::literal(o.out) +
              (a_set ? " already holds a scenes set made with other options" +
                           (differences.empty() ? std::string()
                                                : " (" + OptionError::literal(differences) + ")") +
                           "; choose another {out}, or replace it with {overwrite}"
                     : " is not empty and is not a scenes set; choose a new or empty folder"));
    }
  }
  const std::string tag = std::to_string(std::random_device{}());
  const fs::path parent = out.has_parent_path() ? out.parent_path() : fs::path(".");
  fs::create_directories(parent, ec);
  const fs::path tmp = parent / ("." + out.filename().string() + ".tmp-" + tag);
  ScenesOptions into = o;
  into.out = tmp.string();
  std::vector<ScenesSplitReport> reports;
  try {
    reports = write_scenes(into);
    io::write_file_atomic((tmp / "scenes.json").string(), manifest.dump(2) + "\n");
    const fs::path old = parent / ("." + out.filename().string() + ".old-" + tag);
    if (exists) fs::rename(out, old);
    fs::rename(tmp, out);
    if (exists) fs::remove_all(old, ec);
  } catch (...) {
    fs::remove_all(tmp, ec);
    throw;
  }
  return reports;
}

std::string format_scenes_report(const std::vector<ScenesSplitReport>& reports) {
  std::string out = "| split | type | questions | answers (share) |\n|---|---|---|---|\n";
  for (const auto& r : reports) {
    for (const auto& [type, answers] : r.answers) {
      int64_t total = 0;
      for (const auto& a : answers) total += a.second;
      std::string shares;
      for (size_t i = 0; i < answers.size() && i < 8; ++i) {
        shares += fmt::format("{}{} {:.0f}%", i ? ", " : "", answers[i].first,
                              100.0 * answers[i].second / total);
      }
      out += fmt::format("| {} | {} | {} | {} |\n", r.split, type, total, shares);
    }
  }
  return out;
}

}  // namespace xmodal::data
