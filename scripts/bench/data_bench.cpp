// Data pipeline figures (scripts/bench/data.sh runs it):
//   1. loader throughput, images/s, with decode + augmentation + tokenize, 1 and 2 workers,
//      on a Fashion-scenes set;
//   2. time to parse a VQA-v2-sized questions + annotations pair (generated here: ~440k
//      questions with 10 answers each, like v2 train2014's 443,757).
#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <string>

#include "xmodal/core/runtime.h"
#include "xmodal/data/loader.h"
#include "xmodal/data/scenes.h"
#include "xmodal/data/vqa.h"
#include "xmodal/io/atomic_file.h"
#include "xmodal/tasks/task.h"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}

void write_vqa_sized(const std::string& root, int64_t questions) {
  // Real-looking records, streamed as text (nlohmann would need GBs to build them as a DOM).
  std::string q =
      R"({"info": {"description": "synthetic VQA-v2-sized file"}, "task_type": "Open-Ended", "data_type": "mscoco", "data_subtype": "big", "questions": [)";
  std::string a =
      R"({"info": {"description": "synthetic VQA-v2-sized file"}, "data_type": "mscoco", "data_subtype": "big", "annotations": [)";
  const char* words[] = {"yes", "no", "2", "white", "tennis racket", "red and blue", "1", "dog"};
  for (int64_t i = 0; i < questions; ++i) {
    const int64_t image = i / 5 + 1, id = image * 1000 + i % 5;
    q += fmt::format(
        R"({}{{"image_id": {}, "question": "What color is the thing number {} on the left?", "question_id": {}}})",
        i ? ", " : "", image, i, id);
    a += fmt::format(
        R"({}{{"question_type": "what color is the", "multiple_choice_answer": "{}", "answers": [)",
        i ? ", " : "", words[i % 8]);
    for (int k = 0; k < 10; ++k) {
      a += fmt::format(R"({}{{"answer": "{}", "answer_confidence": "yes", "answer_id": {}}})",
                       k ? ", " : "", words[(i + k / 4) % 8], k + 1);
    }
    a +=
        fmt::format(R"(], "image_id": {}, "answer_type": "other", "question_id": {}}})", image, id);
  }
  q += "]}";
  a += "]}";
  xmodal::io::write_file_atomic(xmodal::data::vqa_questions_file(root, "big"), q);
  xmodal::io::write_file_atomic(xmodal::data::vqa_annotations_file(root, "big"), a);
}

}  // namespace

int main(int argc, char** argv) {
  namespace fs = std::filesystem;
  const std::string work = argc > 1 ? argv[1] : "/tmp/xmodal-bench-data";
  if (!work.empty() && work[0] == '-') {  // e.g. --help: not a folder to fill with scenes
    std::fprintf(stderr, "usage: xmodal_bench_data [WORK_DIR [VQA_QUESTIONS]]\n");
    return 2;
  }
  const int64_t vqa_questions = argc > 2 ? std::atoll(argv[2]) : 443757;
  xmodal::configure_threads(1);  // the loader's own threads do the work
  fs::create_directories(work);

  // 1. Loader throughput on a scenes set (built once).
  xmodal::data::ScenesOptions scenes;
  scenes.out = work + "/scenes";
  scenes.train = 2000;
  scenes.val = 10;
  scenes.test = 10;
  if (!fs::exists(xmodal::data::vqa_questions_file(scenes.out, "train")))
    xmodal::data::build_scenes(scenes);
  xmodal::config::Config config;
  config.data.root = scenes.out;
  config.data.augment.hflip = true;
  config.data.augment.random_resized_crop = true;
  config.data.augment.color_jitter = 0.2;
  auto data = std::make_shared<xmodal::data::TaskData>(xmodal::tasks::load_split(config, "train"));
  std::vector<std::string> texts;
  for (const auto& e : data->examples) texts.push_back(e.texts[0]);
  auto tokenizer =
      std::make_shared<xmodal::text::WordTokenizer>(xmodal::text::WordTokenizer::build(texts));
  for (int workers : {1, 2}) {
    auto o = xmodal::data::loader_options(config, /*train=*/true);
    o.workers = workers;
    xmodal::data::Loader loader(data, tokenizer, o);
    loader.start(0);
    int64_t images = 0;
    const auto start = std::chrono::steady_clock::now();
    while (auto batch = loader.next()) images += batch->size();
    const double s = seconds_since(start);
    std::printf(
        "{\"measure\": \"loader\", \"workers\": %d, \"images\": %lld, \"seconds\": %.2f, "
        "\"images_per_s\": %.0f, \"image_size\": %d}\n",
        workers, static_cast<long long>(images), s, images / s, config.data.image_size);
  }

  // 2. Parsing a VQA-v2-sized split.
  const std::string root = work + "/vqa-big";
  fs::create_directories(root);
  if (!fs::exists(xmodal::data::vqa_annotations_file(root, "big")))
    write_vqa_sized(root, vqa_questions);
  const auto bytes = fs::file_size(xmodal::data::vqa_annotations_file(root, "big")) +
                     fs::file_size(xmodal::data::vqa_questions_file(root, "big"));
  xmodal::data::BadInputPolicy policy;
  const auto start = std::chrono::steady_clock::now();
  const auto set = xmodal::data::read_vqa(root, "big", policy);
  const double s = seconds_since(start);
  std::printf(
      "{\"measure\": \"vqa_parse\", \"questions\": %zu, \"megabytes\": %.0f, \"seconds\": %.2f}\n",
      set.questions.size(), bytes / 1e6, s);
  return 0;
}
