#include "harnesses.h"

#include <unistd.h>
#include <nlohmann/json.hpp>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <stdexcept>

#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/loader.h"
#include "xmodal/data/coco.h"
#include "xmodal/data/transforms.h"
#include "xmodal/data/vqa.h"
#include "xmodal/io/idx.h"
#include "xmodal/io/image.h"
#include "xmodal/io/safetensors.h"
#include "xmodal/io/torch_pickle.h"
#include "xmodal/serve/request.h"
#include "xmodal/text/tokenizer.h"
#include "xmodal/text/wordpiece.h"

// The fuzz binaries get the test data folder as a definition; the unit tests, from their
// generated paths header (they share the library's precompiled header, so no -D flags).
#ifndef XMODAL_FUZZ_DATA_DIR
#include "xmodal_test_paths.h"
#define XMODAL_FUZZ_DATA_DIR XMODAL_TEST_DATA
#endif

namespace xmodal::fuzz {
namespace {

namespace fs = std::filesystem;

std::string bytes(const uint8_t* data, size_t size) {
  return std::string(reinterpret_cast<const char*>(data), size);
}

// A per-process scratch folder (in memory when /dev/shm exists) for parsers that read files.
const fs::path& scratch() {
  static const fs::path dir = [] {
    const fs::path base = fs::exists("/dev/shm") ? fs::path("/dev/shm") : fs::temp_directory_path();
    fs::path d = base / ("xmodal-fuzz-" + std::to_string(::getpid()));
    fs::create_directories(d / "annotations");
    return d;
  }();
  return dir;
}

void write(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

// Splits the input at its first NUL byte: two files from one input.
std::pair<std::string, std::string> two_parts(const std::string& text) {
  const size_t cut = text.find('\0');
  if (cut == std::string::npos) return {text, ""};
  return {text.substr(0, cut), text.substr(cut + 1)};
}

// Runs fn; the parsers' documented failures are exceptions derived from std::exception
// (c10::Error included).
template <class Fn>
void guarded(Fn fn) {
  try {
    fn();
  } catch (const std::exception&) {
  }
}

void config_target(const uint8_t* data, size_t size) {
  guarded([&] { config::parse_config(bytes(data, size), "<fuzz>", {}, config::Folders::keep); });
}

void vqa_target(const uint8_t* data, size_t size) {
  const auto [questions, annotations] = two_parts(bytes(data, size));
  write(data::vqa_questions_file(scratch().string(), "fuzz"), questions);
  const auto annotation_path = data::vqa_annotations_file(scratch().string(), "fuzz");
  if (annotations.empty()) {
    fs::remove(annotation_path);
  } else {
    write(annotation_path, annotations);
  }
  for (const bool skip : {false, true}) {
    data::BadInputPolicy policy;
    policy.skip = skip;
    guarded([&] { data::read_vqa(scratch().string(), "fuzz", policy); });
  }
}

void coco_target(const uint8_t* data, size_t size) {
  const auto [instances, captions] = two_parts(bytes(data, size));
  write(scratch() / "annotations" / "instances_fuzz.json", instances);
  write(scratch() / "annotations" / "captions_fuzz.json", captions);
  for (const bool skip : {false, true}) {
    data::BadInputPolicy policy;
    policy.skip = skip;
    guarded([&] { data::read_coco(scratch().string(), "fuzz", policy, true); });
  }
}

void safetensors_target(const uint8_t* data, size_t size) {
  const auto path = scratch() / "fuzz.safetensors";
  write(path, bytes(data, size));
  guarded([&] {
    for (const auto& [name, tensor] : io::load_safetensors(path.string())) {
      (void)name;
      tensor.sum();  // touch every element
    }
  });
}

void idx_target(const uint8_t* data, size_t size) {
  guarded([&] { io::parse_idx(bytes(data, size), "<fuzz>"); });
}

const text::WordPieceTokenizer& wordpiece() {
  static const auto tokenizer = text::WordPieceTokenizer::load(
      XMODAL_FUZZ_DATA_DIR "/text/wordpiece/bert_base_uncased_vocab.txt");
  return tokenizer;
}

void wordpiece_target(const uint8_t* data, size_t size) {
  // Named, not structured bindings: C++17 lambdas cannot capture those (clang rejects it).
  const auto parts = two_parts(bytes(data, size));
  const std::string& a = parts.first;
  const std::string& b = parts.second;
  guarded([&] {
    wordpiece().encode_ids(a);
    wordpiece().encode(a, 32);
    wordpiece().encode_pair(a, b, 24);
  });
}

void word_tokenizer_target(const uint8_t* data, size_t size) {
  const auto parts = two_parts(bytes(data, size));
  const std::string& text = parts.second;
  const auto path = scratch() / "vocab.txt";
  write(path, parts.first);
  guarded([&] {
    const auto tokenizer = text::WordTokenizer::load(path.string());
    tokenizer.encode(text, 16);
  });
}

void image_target(const uint8_t* data, size_t size) {
  const auto path = scratch() / "fuzz.img";
  write(path, bytes(data, size));
  guarded([&] {
    const auto rgb = io::read_image_rgb(path.string());
    data::ImageTransformOptions o;
    o.size = 16;
    std::mt19937_64 rng(1);
    data::transform_image(rgb, o, rng);
  });
}

// What `xmodal serve` does with a request body before the model: the nesting check and JSON
// parse, then each item's base64 image decoded (with a small pixel limit).
void serve_request_target(const uint8_t* data, size_t size) {
  guarded([&] {
    const auto body = serve::parse_body(bytes(data, size));
    const auto items = body.is_array() ? body : nlohmann::json::array({body});
    for (const auto& item : items) {
      if (!item.is_object() || !item.contains("image") || !item["image"].is_string()) continue;
      const std::string image = serve::decode_base64(item["image"].get<std::string>(), "image");
      if (serve::decode_base64(serve::encode_base64(image), "again") != image) {
        std::abort();  // the round trip lost bytes: a finding
      }
      io::decode_image_rgb(image, "image", uint64_t{1} << 20);
    }
  });
}

void torch_pickle_target(const uint8_t* data, size_t size) {
  // Every record is 64 bytes of zeros: storages reference records by key.
  const auto record = [](const std::string&) { return torch::zeros({64}, torch::kUInt8); };
  guarded([&] { io::unpickle_state_dict(bytes(data, size), record, "<fuzz>"); });
}

// A checkpoint folder: state.json, then model.safetensors after the first NUL byte. The CRC-32
// gate stops most mutations of the second part; fuzz_safetensors covers that reader.
void checkpoint_target(const uint8_t* data, size_t size) {
  const auto [state, model] = two_parts(bytes(data, size));
  const auto dir = scratch() / "checkpoint";
  fs::create_directories(dir);
  write(dir / "state.json", state);
  write(dir / "model.safetensors", model);
  for (const bool optimizer : {false, true}) {
    checkpoint::LoadOptions options;
    options.optimizer = optimizer;
    guarded([&] {
      const auto content = checkpoint::load_checkpoint(dir.string(), options);
      checkpoint::set_cpu_rng_state(content.state.rng_cpu);  // what a resume does with it
    });
  }
}

}  // namespace

const std::vector<Target>& targets() {
  static const std::vector<Target> all = {
      {"config", config_target},
      {"vqa", vqa_target},
      {"coco", coco_target},
      {"safetensors", safetensors_target},
      {"idx", idx_target},
      {"wordpiece", wordpiece_target},
      {"word_tokenizer", word_tokenizer_target},
      {"image", image_target},
      {"torch_pickle", torch_pickle_target},
      {"checkpoint", checkpoint_target},
      {"serve_request", serve_request_target},
  };
  return all;
}

const Target* find_target(const std::string& name) {
  for (const auto& t : targets()) {
    if (name == t.name) return &t;
  }
  return nullptr;
}

}  // namespace xmodal::fuzz
