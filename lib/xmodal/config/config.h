// The typed configuration: one plain struct per YAML section (docs/design.md section 5).
//
// Each struct lists its fields once, in visit(), with the YAML name, a one-line description and
// the allowed range. The loader, the dumper, override handling, equality and the key list all
// walk that one list, so a new field is added in exactly one place. Model code never sees
// these structs; models/factory turns them into Options.
#pragma once

#include <array>
#include <cstdint>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace xmodal::config {

// ---- enums: YAML spelling <-> value, listed once per enum -----------------------------------

enum class Task { vqa, counting, classify, retrieval, caption };
enum class Dataset { scenes, coco, vqa, fashion_mnist, image_folder, karpathy };
enum class BadSample { fail, skip };
enum class TokenizerType { word, wordpiece, sentencepiece };
enum class Accents { automatic, strip, keep };
enum class FusionMode { concat, late, image_only, text_only };
enum class Schedule { linear, cosine, constant };
enum class MetricMode { max, min };
enum class ResizeMode { fixed, shorter_side };
enum class Stem { patch, conv };
enum class Positions { learned, sincos };
enum class DistBackend { automatic, gloo, nccl };
enum class Precision { fp32, bf16, fp16 };
enum class VqaProtocol { official, legacy };
enum class Quantize { none, int8 };

template <class E>
struct EnumTable;  // specialised below: static constexpr std::array<std::pair<E, const char*>, N>

template <>
struct EnumTable<Task> {
  static constexpr std::array<std::pair<Task, const char*>, 5> entries = {
      {{Task::vqa, "vqa"},
       {Task::counting, "counting"},
       {Task::classify, "classify"},
       {Task::retrieval, "retrieval"},
       {Task::caption, "caption"}}};
};
template <>
struct EnumTable<Dataset> {
  static constexpr std::array<std::pair<Dataset, const char*>, 6> entries = {
      {{Dataset::scenes, "scenes"},
       {Dataset::coco, "coco"},
       {Dataset::vqa, "vqa"},
       {Dataset::fashion_mnist, "fashion_mnist"},
       {Dataset::image_folder, "image_folder"},
       {Dataset::karpathy, "karpathy"}}};
};
template <>
struct EnumTable<BadSample> {
  static constexpr std::array<std::pair<BadSample, const char*>, 2> entries = {
      {{BadSample::fail, "fail"}, {BadSample::skip, "skip"}}};
};
template <>
struct EnumTable<TokenizerType> {
  static constexpr std::array<std::pair<TokenizerType, const char*>, 3> entries = {
      {{TokenizerType::word, "word"},
       {TokenizerType::wordpiece, "wordpiece"},
       {TokenizerType::sentencepiece, "sentencepiece"}}};
};
template <>
struct EnumTable<Accents> {
  static constexpr std::array<std::pair<Accents, const char*>, 3> entries = {
      {{Accents::automatic, "auto"}, {Accents::strip, "strip"}, {Accents::keep, "keep"}}};
};
template <>
struct EnumTable<FusionMode> {
  static constexpr std::array<std::pair<FusionMode, const char*>, 4> entries = {
      {{FusionMode::concat, "concat"},
       {FusionMode::late, "late"},
       {FusionMode::image_only, "image_only"},
       {FusionMode::text_only, "text_only"}}};
};
template <>
struct EnumTable<Schedule> {
  static constexpr std::array<std::pair<Schedule, const char*>, 3> entries = {
      {{Schedule::linear, "linear"},
       {Schedule::cosine, "cosine"},
       {Schedule::constant, "constant"}}};
};
template <>
struct EnumTable<MetricMode> {
  static constexpr std::array<std::pair<MetricMode, const char*>, 2> entries = {
      {{MetricMode::max, "max"}, {MetricMode::min, "min"}}};
};

template <>
struct EnumTable<ResizeMode> {
  static constexpr std::array<std::pair<ResizeMode, const char*>, 2> entries = {
      {{ResizeMode::fixed, "fixed"}, {ResizeMode::shorter_side, "shorter_side"}}};
};

template <>
struct EnumTable<Stem> {
  static constexpr std::array<std::pair<Stem, const char*>, 2> entries = {
      {{Stem::patch, "patch"}, {Stem::conv, "conv"}}};
};

template <>
struct EnumTable<Positions> {
  static constexpr std::array<std::pair<Positions, const char*>, 2> entries = {
      {{Positions::learned, "learned"}, {Positions::sincos, "sincos"}}};
};

template <>
struct EnumTable<DistBackend> {
  static constexpr std::array<std::pair<DistBackend, const char*>, 3> entries = {
      {{DistBackend::automatic, "auto"}, {DistBackend::gloo, "gloo"}, {DistBackend::nccl, "nccl"}}};
};

template <>
struct EnumTable<Precision> {
  static constexpr std::array<std::pair<Precision, const char*>, 3> entries = {
      {{Precision::fp32, "fp32"}, {Precision::bf16, "bf16"}, {Precision::fp16, "fp16"}}};
};

template <>
struct EnumTable<VqaProtocol> {
  static constexpr std::array<std::pair<VqaProtocol, const char*>, 2> entries = {
      {{VqaProtocol::official, "official"}, {VqaProtocol::legacy, "legacy"}}};
};

template <>
struct EnumTable<Quantize> {
  static constexpr std::array<std::pair<Quantize, const char*>, 2> entries = {
      {{Quantize::none, "none"}, {Quantize::int8, "int8"}}};
};

/// The YAML spelling of an enum value.
template <class E>
std::string to_string(E value) {
  for (const auto& [v, name] : EnumTable<E>::entries) {
    if (v == value) return name;
  }
  return "?";
}

/// All YAML spellings of an enum, in declaration order.
template <class E>
std::vector<std::string> enum_names() {
  std::vector<std::string> names;
  for (const auto& entry : EnumTable<E>::entries) names.emplace_back(entry.second);
  return names;
}

/// Parses a YAML spelling; nullopt when it is not one.
template <class E>
std::optional<E> enum_from_string(std::string_view text) {
  for (const auto& [v, name] : EnumTable<E>::entries) {
    if (text == name) return v;
  }
  return std::nullopt;
}

// ---- field constraints ------------------------------------------------------------------------

/// Allowed range of a numeric field; checked by the loader, reported with file and line.
struct Range {
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  bool min_exclusive = false;

  static Range any() { return {}; }
  static Range at_least(double v) { return {v}; }
  static Range positive() { return {0.0, std::numeric_limits<double>::infinity(), true}; }
  static Range between(double lo, double hi) { return {lo, hi}; }
};

// ---- sections ---------------------------------------------------------------------------------

struct RunConfig {
  std::string dir = "runs/quickstart";  // run directory: config, log, metrics, checkpoints
  int64_t seed = 1234;                  // seed of every random number generator
  int threads = 0;                      // compute threads; 0 = all cores
  std::string device = "auto";          // auto | cpu | cuda | cuda:N

  template <class V>
  void visit(V& v) {
    v.field("dir", dir, "run directory: resolved config, train.log, metrics.jsonl, checkpoints");
    v.field("seed", seed, "seed of every random number generator (data order, init, dropout)",
            Range::at_least(0));
    v.field("threads", threads, "compute threads (OpenBLAS + LibTorch); 0 = all cores",
            Range::between(0, 4096));
    v.field("device", device, "auto | cpu | cuda | cuda:N (auto = first GPU if any, else CPU)");
  }
};

struct AugmentConfig {
  bool random_resized_crop = false;
  double crop_scale_min = 0.6;
  bool hflip = false;
  double color_jitter = 0.0;
  std::vector<double> zoom_out = {};  // [min, max] canvas / image side ratio; empty = off

  template <class V>
  void visit(V& v) {
    v.field("random_resized_crop", random_resized_crop,
            "train: crop a random region (area >= crop_scale_min) before resizing");
    v.field("crop_scale_min", crop_scale_min, "smallest crop area as a fraction of the image",
            Range::between(0.05, 1));
    v.field("hflip", hflip,
            "train: mirror half the images and swap left/right in their text so the pair stays "
            "true");
    v.field("color_jitter", color_jitter,
            "train: random brightness, contrast and saturation change up to this fraction; 0 = off",
            Range::between(0, 1));
    v.field("zoom_out", zoom_out,
            "[min, max] -- paste the image on a black canvas whose side is a ratio in [min, max] "
            "(>= 1) of the image's: random ratio and place in training (torchvision "
            "RandomZoomOut), the middle ratio centred in evaluation; e.g. to pretrain on single "
            "articles at the scale they have in the scenes; [] = off");
  }
};

struct DataConfig {
  Dataset dataset = Dataset::scenes;         // which reader: scenes | coco | vqa
  std::string root = "data/fashion-scenes";  // data set root (layouts in data/README.md)
  std::string train_split = "train";
  std::string val_split = "val";
  std::string test_split = "test";
  int image_size = 96;  // images are resized to image_size x image_size
  ResizeMode resize = ResizeMode::fixed;
  std::vector<double> mean = {0.5, 0.5, 0.5};
  std::vector<double> stddev = {0.5, 0.5, 0.5};  // YAML key: std
  int max_text_len = 32;                         // tokens per text, [CLS]/[SEP] included
  int workers = 2;                               // loader threads (decode, transform, tokenize)
  int prefetch = 4;                              // batches prepared ahead of the trainer
  int image_cache_mb = 512;  // decoded images kept in memory across epochs; 0 = decode every time
  BadSample on_bad_sample = BadSample::fail;  // corrupt image or text: fail | skip (and count)
  double max_bad_share = 0.1;  // with skip: stop when more of the last 1000 samples are bad
  int answer_min_count = 1;    // vqa: answers kept in the vocabulary
  int answer_top_k = 0;        // vqa: keep only the K most frequent; 0 = all
  AugmentConfig augment;
  bool group_by_image = false;  // train batches keep an image's questions together
  int group_size = 0;           // at most this many of an image's samples together; 0 = all
  std::string split_file = "dataset_coco.json";  // karpathy: the split file, under root

  template <class V>
  void visit(V& v) {
    v.field("dataset", dataset,
            "data set reader: scenes | coco | vqa | fashion_mnist (IDX files; splits train = "
            "the first 11/12 of the training images, val = the last 1/12, test = t10k) | "
            "image_folder (ROOT/SPLIT/CLASS/*.png|jpg) | karpathy (retrieval: the Karpathy split "
            "file ROOT/split_file, e.g. dataset_coco.json, dataset_flickr30k.json, or the "
            "scenes' dataset_scenes.json)");
    v.field("root", root, "data set root folder (layouts: data/README.md)");
    v.field("train_split", train_split, "split used for training");
    v.field("val_split", val_split, "split used for validation and early stopping");
    v.field("test_split", test_split, "split used by `xmodal eval --split test`");
    v.field("image_size", image_size, "images are resized to image_size x image_size pixels",
            Range::between(1, 8192));
    v.field("resize", resize,
            "fixed (stretch to image_size) | shorter_side (scale the shorter side, centre crop)");
    v.field("mean", mean, "per-channel mean subtracted from RGB values in [0, 1]");
    v.field("std", stddev, "per-channel standard deviation the values are divided by");
    v.field("max_text_len", max_text_len, "tokens per text including [CLS] and [SEP]",
            Range::between(2, 65536));
    v.field("workers", workers, "loader threads for decode, transform and tokenize",
            Range::between(0, 256));
    v.field("prefetch", prefetch, "batches prepared ahead of the trainer", Range::between(1, 1024));
    v.field("image_cache_mb", image_cache_mb,
            "MiB of decoded images kept across epochs (grey ones at 1 byte per pixel); 0 = off",
            Range::between(0, 1 << 20));
    v.field("on_bad_sample", on_bad_sample,
            "a corrupt image or text: fail (stop with its path) or skip (count and log it)");
    v.field("max_bad_share", max_bad_share,
            "with on_bad_sample skip: stop with an error when more than this share of the last "
            "1000 samples read (or of an epoch, if smaller) is bad",
            Range::between(0.0, 1.0));
    v.field("answer_min_count", answer_min_count,
            "vqa: answers seen fewer times in the training split are left out (ViLT: 9)",
            Range::at_least(1));
    v.field("answer_top_k", answer_top_k, "vqa: keep only the K most frequent answers; 0 = all",
            Range::at_least(0));
    v.section("augment", augment, "training-time augmentation");
    v.field("group_by_image", group_by_image,
            "train: shuffle images rather than samples and keep each image's samples (VQA "
            "questions) together, so a batch encodes each of its few images once (faster when "
            "images have several questions; the batch still counts samples)");
    v.field("group_size", group_size,
            "with group_by_image: an image's samples are kept together in runs of at most this "
            "many (more distinct images per batch, less sharing); 0 = all of them",
            Range::at_least(0));
    v.field("split_file", split_file,
            "data.dataset karpathy: the split file under data.root (images with split "
            "train | restval | val | test, filepath, filename, sentences[].raw); split train "
            "also reads restval, as retrieval papers do");
  }
};

struct TokenizerConfig {
  TokenizerType type = TokenizerType::word;  // word | wordpiece | sentencepiece
  std::string path = "";   // vocab.txt (wordpiece) or .model (sentencepiece); word builds its own
  bool lower_case = true;  // wordpiece: do_lower_case (uncased BERT)
  Accents accents = Accents::automatic;  // wordpiece: strip_accents (auto: when lower-casing)
  bool chinese_chars = true;             // wordpiece: tokenize_chinese_chars

  template <class V>
  void visit(V& v) {
    v.field("type", type,
            "word (vocabulary built from the training texts) | wordpiece | sentencepiece");
    v.field("path", path, "wordpiece: BERT vocab.txt; sentencepiece: .model file; word: unused");
    v.field("lower_case", lower_case,
            "wordpiece: lower-case the text (an uncased BERT; tokenizer_config.json's "
            "do_lower_case)");
    v.field("accents", accents,
            "wordpiece: strip | keep accents; auto strips them when lower-casing (HF's "
            "strip_accents: null)");
    v.field("chinese_chars", chinese_chars,
            "wordpiece: split around CJK ideographs (tokenize_chinese_chars)");
  }
};

struct VisionConfig {
  int patch_size = 16;
  int hidden = 192;
  int layers = 6;
  int heads = 3;
  int mlp_dim = 768;
  double dropout = 0.0;
  std::string pretrained = "";  // Hugging Face ViTModel folder
  Stem stem = Stem::patch;
  int stem_width = 32;
  Positions positions = Positions::learned;
  std::string init_from = "";   // xmodal checkpoint or run dir whose vision.* weights start this
  int64_t freeze_steps = 0;     // optimizer steps the loaded encoder stays fixed; -1 = always
  bool freeze_stem = false;     // the loaded convolutional stem is never trained
  double layer_norm_eps = 0.0;  // 0 = the pretrained config.json's, else 1e-6

  template <class V>
  void visit(V& v) {
    v.field("stem", stem,
            "patch (linear patch embedding, ViT) | conv (3x3 stride-2 conv + BatchNorm + GELU "
            "blocks down to the patch grid, then a 1x1 projection; patch_size a power of 2)");
    v.field("stem_width", stem_width,
            "conv stem: channels of the first block (doubling, at most "
            "hidden)",
            Range::at_least(1));
    v.field("patch_size", patch_size, "side of the square image patches, in pixels",
            Range::at_least(1));
    v.field("positions", positions,
            "learned (a table for the data.image_size grid, interpolated for other grids) | "
            "sincos (fixed 2D sine-cosine of each patch's place on the grid, exact for any "
            "grid; no parameters; hidden a multiple of 4)");
    v.field("hidden", hidden, "ViT width", Range::at_least(1));
    v.field("layers", layers, "ViT encoder layers", Range::at_least(0));
    v.field("heads", heads, "attention heads per layer", Range::at_least(1));
    v.field("mlp_dim", mlp_dim, "MLP width inside each layer", Range::at_least(1));
    v.field("dropout", dropout, "dropout probability", Range::between(0, 1));
    v.field("pretrained", pretrained,
            "Hugging Face ViTModel folder (config.json + weights); \"\" = train from scratch");
    v.field("init_from", init_from,
            "xmodal checkpoint or run directory (its best checkpoint) whose vision.* weights "
            "start this model (e.g. a task: classify run); position embeddings are "
            "interpolated to this image size; \"\" = none");
    v.field("freeze_steps", freeze_steps,
            "optimizer steps for which the vision encoder is not trained (with init_from or "
            "pretrained); -1 = never trained (a locked tower, as in LiT)",
            Range::at_least(-1));
    v.field("freeze_stem", freeze_stem,
            "conv stem: the loaded stem (init_from) is never trained, its BatchNorm statistics "
            "included, so a step skips the stem's backward pass; the layers above it train");
    v.field("layer_norm_eps", layer_norm_eps,
            "LayerNorm epsilon; 0 = from the pretrained config.json, else 1e-6 (torchvision)",
            Range::at_least(0));
  }
};

struct TextConfig {
  int hidden = 192;
  int layers = 2;
  int heads = 3;
  int intermediate = 768;
  int max_position = 64;
  double dropout = 0.0;
  std::string pretrained = "";  // Hugging Face BertModel folder
  std::string init_from = "";   // xmodal checkpoint or run dir whose text.* weights start this
  int64_t freeze_steps = 0;     // optimizer steps the loaded encoder stays fixed; -1 = always
  double layer_norm_eps = 0.0;  // 0 = the pretrained config.json's, else 1e-12
  int64_t vocab_size = 0;       // word embedding rows; 0 = the tokenizer's vocabulary

  template <class V>
  void visit(V& v) {
    v.field("hidden", hidden, "BERT width", Range::at_least(1));
    v.field("layers", layers, "BERT encoder layers", Range::at_least(0));
    v.field("heads", heads, "attention heads per layer", Range::at_least(1));
    v.field("intermediate", intermediate, "feed-forward width inside each layer",
            Range::at_least(1));
    v.field("max_position", max_position, "learned positions; must be >= data.max_text_len",
            Range::at_least(1));
    v.field("dropout", dropout, "dropout probability", Range::between(0, 1));
    v.field("pretrained", pretrained,
            "Hugging Face BertModel folder (config.json + weights); \"\" = train from scratch");
    v.field("init_from", init_from,
            "xmodal checkpoint or run directory (its best checkpoint) whose text.* weights "
            "start this model; \"\" = none");
    v.field("freeze_steps", freeze_steps,
            "optimizer steps for which the text encoder is not trained (with init_from or "
            "pretrained); -1 = never trained (a locked tower, as in LiT)",
            Range::at_least(-1));
    v.field("layer_norm_eps", layer_norm_eps,
            "LayerNorm epsilon; 0 = from the pretrained config.json, else 1e-12 (BERT)",
            Range::at_least(0));
    v.field("vocab_size", vocab_size,
            "word embedding rows; 0 = the tokenizer's vocabulary (the pretrained config.json's "
            "vocab_size with model.text.pretrained)",
            Range::at_least(0));
  }
};

struct FusionConfig {
  FusionMode mode = FusionMode::concat;
  int hidden = 192;
  int layers = 2;
  int heads = 3;
  int mlp_dim = 768;
  double dropout = 0.0;

  template <class V>
  void visit(V& v) {
    v.field("mode", mode,
            "concat (one transformer over [text ; image] tokens) | late (pool each, MLP) | "
            "image_only | text_only");
    v.field("hidden", hidden, "fusion transformer width", Range::at_least(1));
    v.field("layers", layers, "fusion transformer layers", Range::at_least(0));
    v.field("heads", heads, "attention heads per layer", Range::at_least(1));
    v.field("mlp_dim", mlp_dim, "MLP width inside each layer", Range::at_least(1));
    v.field("dropout", dropout,
            "dropout probability in the fusion layers (before: model.vision.dropout was used)",
            Range::between(0, 1));
  }
};

struct HeadConfig {
  int hidden = 384;
  int max_count = 10;

  template <class V>
  void visit(V& v) {
    v.field("hidden", hidden, "hidden width of the task head MLP", Range::at_least(1));
    v.field("max_count", max_count, "counting: count classes are 0..max_count", Range::at_least(1));
  }
};

struct RetrievalConfig {
  int embed_dim = 256;

  template <class V>
  void visit(V& v) {
    v.field("embed_dim", embed_dim,
            "retrieval: width of the shared image-text embedding space (a linear projection of "
            "each encoder's [CLS] token, L2-normalised)",
            Range::at_least(1));
  }
};

struct ModelConfig {
  VisionConfig vision;
  TextConfig text;
  FusionConfig fusion;
  HeadConfig head;
  RetrievalConfig retrieval;

  template <class V>
  void visit(V& v) {
    v.section("vision", vision, "ViT image encoder");
    v.section("text", text, "BERT text encoder");
    v.section("fusion", fusion, "how the two modalities meet");
    v.section("head", head, "task head on the pooled fusion output");
    v.section("retrieval", retrieval, "task retrieval: the dual encoder's embedding space");
  }
};

struct EarlyStoppingConfig {
  std::string metric = "accuracy";
  MetricMode mode = MetricMode::max;
  int patience = 5;
  double min_delta = 0.0;

  template <class V>
  void visit(V& v) {
    v.field("metric", metric, "validation metric watched (see the task's metric list)");
    v.field("mode", mode, "max (higher is better) | min");
    v.field("patience", patience, "evaluations without improvement before stopping; 0 = never stop",
            Range::at_least(0));
    v.field("min_delta", min_delta, "smallest change that counts as an improvement",
            Range::at_least(0));
  }
};

struct LossConfig {
  double presence_weight = 1.0;
  double count_weight = 1.0;
  double label_smoothing = 0.1;

  template <class V>
  void visit(V& v) {
    v.field("label_smoothing", label_smoothing,
            "caption: label smoothing of the next-token cross-entropy (0 = none)",
            Range::between(0, 1));
    v.field("presence_weight", presence_weight,
            "counting: weight of the per-category presence BCE loss", Range::at_least(0));
    v.field("count_weight", count_weight,
            "counting: weight of the per-category count cross-entropy loss", Range::at_least(0));
  }
};

struct AuxConfig {
  double counting = 0.0;
  double dense = 0.0;
  double locate = 0.0;

  template <class V>
  void visit(V& v) {
    v.field("counting", counting,
            "vqa: weight of an auxiliary counting loss on the image tokens, supervised by the "
            "COCO instances of the same images (DATA_ROOT/annotations/instances_SPLIT.json); "
            "0 = off",
            Range::at_least(0));
    v.field("dense", dense,
            "weight of a dense auxiliary loss: a linear layer on each image patch token says "
            "which categories have an object centred in that patch (COCO instance boxes of the "
            "same images); needs image_size divisible by patch_size; 0 = off",
            Range::at_least(0));
    v.field("locate", locate,
            "weight of an auxiliary locating loss: a linear layer on the image encoder's [CLS] "
            "token names the category of the leftmost and of the rightmost object (box centres "
            "of the same images' COCO instances, after flips and crops); 0 = off",
            Range::at_least(0));
  }
  bool any() const { return counting > 0 || dense > 0 || locate > 0; }
};

/// Knowledge distillation (train.distill): a trained teacher of the same task and classes runs
/// next to the student without gradients, and the loss adds weight x the distillation term
/// (tasks/task.h, Task::distill_loss).
struct DistillConfig {
  std::string teacher = "";  // xmodal checkpoint or run directory (its best checkpoint)
  double weight = 1.0;
  double temperature = 2.0;
  double features = 0.0;  // weight of the image-feature term

  template <class V>
  void visit(V& v) {
    v.field("teacher", teacher,
            "xmodal checkpoint or run directory (its best checkpoint) of the same task, classes "
            "and input pipeline whose outputs the student also learns from; \"\" = no "
            "distillation");
    v.field("weight", weight,
            "weight of the distillation term added to the task loss (0: the teacher runs, the "
            "student learns as without it)",
            Range::at_least(0));
    v.field("temperature", temperature,
            "softening temperature T of both models' outputs (the term is scaled by T^2)",
            Range::positive());
    v.field("features", features,
            "weight of a second term: the mean squared difference of the student's and the "
            "teacher's image-encoder tokens (needs the same model.vision.hidden and patch grid); "
            "0 = off",
            Range::at_least(0));
  }
};

struct TrainConfig {
  int batch_size = 64;
  int64_t max_steps = 0;
  int epochs = 10;
  double lr = 3.0e-4;
  double weight_decay = 0.01;
  double warmup = 0.1;
  Schedule schedule = Schedule::cosine;
  double grad_clip = 1.0;
  int grad_accum = 1;
  double head_lr_mult = 1.0;
  double adam_beta1 = 0.9;
  double adam_beta2 = 0.999;
  double adam_eps = 1e-8;
  int64_t eval_every = 500;
  int64_t checkpoint_every = 500;
  int keep_last = 2;
  int64_t log_every = 50;
  bool tensorboard = true;  // RUN_DIR/tb/ event file with every scalar of metrics.jsonl
  LossConfig loss;
  AuxConfig aux;
  EarlyStoppingConfig early_stopping;
  double vision_lr_mult = 1.0;
  double text_lr_mult = 1.0;
  double fusion_lr_mult = 1.0;
  Precision precision = Precision::fp32;
  double itm = 0.0;  // retrieval: weight of the image-text matching loss; 0 = no ITM head
  DistillConfig distill;

  template <class V>
  void visit(V& v) {
    v.field("batch_size", batch_size,
            "samples per forward pass (per process when training on several: the global batch "
            "is batch_size x processes)",
            Range::at_least(1));
    v.field("max_steps", max_steps, "optimizer steps to run; 0 = run `epochs` epochs",
            Range::at_least(0));
    v.field("epochs", epochs, "epochs to run when max_steps is 0", Range::at_least(0));
    v.field("lr", lr, "peak learning rate (AdamW)", Range::positive());
    v.field("weight_decay", weight_decay,
            "decoupled weight decay (not applied to biases, LayerNorm, embeddings)",
            Range::at_least(0));
    v.field("warmup", warmup, "warmup: < 1 = fraction of all optimizer steps, >= 1 = steps",
            Range::at_least(0));
    v.field("schedule", schedule, "decay after warmup: linear | cosine | constant");
    v.field("grad_clip", grad_clip, "clip the global gradient norm to this; 0 = off",
            Range::at_least(0));
    v.field("grad_accum", grad_accum, "batches accumulated per optimizer step", Range::at_least(1));
    v.field("head_lr_mult", head_lr_mult,
            "learning-rate multiplier for the task head (and the auxiliary heads)",
            Range::positive());
    v.field("vision_lr_mult", vision_lr_mult, "learning-rate multiplier for the image encoder",
            Range::positive());
    v.field("text_lr_mult", text_lr_mult, "learning-rate multiplier for the text encoder",
            Range::positive());
    v.field("fusion_lr_mult", fusion_lr_mult, "learning-rate multiplier for the fusion module",
            Range::positive());
    v.field("adam_beta1", adam_beta1, "AdamW first-moment decay", Range::between(0, 0.999999));
    v.field("adam_beta2", adam_beta2, "AdamW second-moment decay", Range::between(0, 0.999999));
    v.field("adam_eps", adam_eps, "AdamW epsilon added to the root of the second moment",
            Range::positive());
    v.field("eval_every", eval_every, "optimizer steps between validations; 0 = each epoch",
            Range::at_least(0));
    v.field("checkpoint_every", checkpoint_every,
            "optimizer steps between checkpoints; 0 = each epoch", Range::at_least(0));
    v.field("keep_last", keep_last, "checkpoints kept besides best", Range::at_least(1));
    v.field("log_every", log_every,
            "optimizer steps between progress lines and metrics.jsonl records", Range::at_least(1));
    v.field("tensorboard", tensorboard,
            "write RUN_DIR/tb/events.out.tfevents.* (TensorBoard) with every number of "
            "metrics.jsonl: train/loss, eval/accuracy, ... (tensorboard --logdir runs)");
    v.section("loss", loss, "loss weights");
    v.section("aux", aux, "auxiliary losses");
    v.section("early_stopping", early_stopping, "stop when validation stops improving");
    v.field("precision", precision,
            "fp32 | bf16 (autocast: matrix products in bfloat16; CUDA only for now) | fp16 "
            "(refused for now: needs dynamic loss scaling)");
    v.field("itm", itm,
            "retrieval: weight of an image-text matching loss (a 2-way head on the concat "
            "fusion's pooled output, each pair against an in-batch hard negative text and image "
            "drawn by their contrastive similarity, as ALBEF); 0 = no ITM head",
            Range::at_least(0));
    v.section("distill", distill, "knowledge distillation from a trained teacher");
  }
};

/// Data-parallel training on several processes (`xmodal train --nproc N`, or torchrun's
/// RANK / WORLD_SIZE / LOCAL_RANK / MASTER_ADDR / MASTER_PORT).
struct DistConfig {
  DistBackend backend = DistBackend::automatic;
  double bucket_mb = 25.0;
  double timeout_s = 300.0;

  template <class V>
  void visit(V& v) {
    v.field("backend", backend, "auto (nccl on CUDA devices, else gloo) | gloo | nccl");
    v.field("bucket_mb", bucket_mb, "gradients are all-reduced in flat buckets of this many MB",
            Range::positive());
    v.field("timeout_s", timeout_s,
            "seconds a rendezvous or collective may wait for the other processes before the "
            "run fails (a dead or unreachable process)",
            Range::positive());
  }
};

struct CaptionGenerationConfig {
  int beam_size = 3;
  int max_length = 20;
  int min_length = 1;
  double length_penalty = 1.0;
  int no_repeat_ngram = 0;

  template <class V>
  void visit(V& v) {
    v.field("beam_size", beam_size, "hypotheses kept per image (1 = greedy)", Range::at_least(1));
    v.field("max_length", max_length, "most words (tokens) of a caption, [SEP] not counted",
            Range::at_least(1));
    v.field("min_length", min_length, "fewest tokens before [SEP] may end a caption",
            Range::at_least(0));
    v.field("length_penalty", length_penalty,
            "a finished hypothesis scores log p / length^length_penalty (0 = sum of log p)",
            Range::at_least(0));
    v.field("no_repeat_ngram", no_repeat_ngram,
            "no n-gram of this many tokens appears twice in a caption (0 = allowed)",
            Range::at_least(0));
  }
};

struct EvalConfig {
  int batch_size = 128;
  VqaProtocol vqa_protocol = VqaProtocol::official;  // VQA accuracy: official | legacy
  int rerank_k = 0;  // retrieval with ITM: candidates re-ranked by ITM + ITC; 0 = off
  Quantize quantize = Quantize::none;
  Precision precision = Precision::fp32;
  std::vector<std::string> prompts = {"a picture showing 1 {}.", "a {} in the middle."};
  CaptionGenerationConfig caption;

  template <class V>
  void visit(V& v) {
    v.section("caption", caption,
              "caption: beam search of eval, predict and serve (--beam-size and the others "
              "override it)");
    v.field("batch_size", batch_size, "samples per forward pass in eval and predict",
            Range::at_least(1));
    v.field("vqa_protocol", vqa_protocol,
            "VQA accuracy: official (GT-Vision-Lab master a013f00, 2021) | legacy (the "
            "evaluation before it, for comparing with older papers)");
    v.field("rerank_k", rerank_k,
            "retrieval with an ITM head (train.itm > 0): the top k contrastive candidates of "
            "each query are re-ranked by ITM + ITC similarity, as BLIP (both rankings are "
            "reported); 0 = contrastive ranking only",
            Range::at_least(0));
    v.field("quantize", quantize,
            "none | int8: eval's Linear layers (encoders, fusion, heads) as dynamically "
            "quantized int8 with per-row weight scales (--quantize int8 for predict, embed, "
            "explain and serve)");
    v.field("precision", precision,
            "fp32 | bf16: the model's products in eval, predict, explain and serve under "
            "autocast, outputs in fp32 (--precision bf16; on a CPU, one with AVX512-BF16 or "
            "AMX); fp16 is refused");
    v.field("prompts", prompts,
            "retrieval: templates of the zero-shot classifier's texts, {} = the class name; a "
            "class's text embedding is the normalised mean over the templates");
  }
};

/// The whole resolved configuration (defaults < file < includes < --set).
struct Config {
  Task task = Task::vqa;
  RunConfig run;
  DataConfig data;
  TokenizerConfig tokenizer;
  ModelConfig model;
  TrainConfig train;
  EvalConfig eval;
  DistConfig dist;

  /// Where each key was last set ("configs/x.yaml:12", "--set train.lr=1e-3", or
  /// "DIR/config.json (hidden_size)" for a key taken from a pretrained folder); keys left at
  /// their default are absent. Not part of the configuration's value.
  std::map<std::string, std::string> origins;
  /// The keys taken from a pretrained folder (config/pretrained.h); --dump-config marks them.
  /// Not part of the configuration's value.
  std::set<std::string> pretrained_keys;
  /// The keys whose value comes from an included file and was not set again by the file that
  /// includes it or by --set: a pretrained folder's config.json replaces them (a config that
  /// includes the quickstart and names a BERT folder gets that BERT's sizes). Not part of the
  /// configuration's value.
  std::set<std::string> base_keys;

  template <class V>
  void visit(V& v) {
    v.field("task", task,
            "vqa (image + question -> answer) | counting (image + text -> counts) | classify "
            "(image -> class, ViT + linear head: encoder pretraining) | retrieval (image-text "
            "embeddings: contrastive dual encoder, optional ITM re-ranking) | caption (image -> "
            "text: the concat fusion as a left-to-right decoder, beam search, COCO caption "
            "metrics)");
    v.section("run", run, "where and how the run executes");
    v.section("data", data, "data set and input pipeline");
    v.section("tokenizer", tokenizer, "text tokenizer");
    v.section("model", model, "architecture");
    v.section("train", train, "optimisation");
    v.section("eval", eval, "evaluation and prediction");
    v.section("dist", dist, "training on several processes or machines");
  }

  /// "file:line" (or "--set ...") where `key` was set, or "default".
  std::string origin(const std::string& key) const;
};

/// Validation metrics each task reports (the names early_stopping.metric may use) and whether
/// higher is better.
std::vector<std::pair<std::string, MetricMode>> task_metrics(Task task);

/// Cross-field rules (divisibility of sizes, text length vs positions, tokenizer files, step
/// counts, metric names). Throws ConfigError listing every problem with where its key was set.
void validate(const Config& config);

/// Every full key ("model.vision.patch_size") in declaration order.
std::vector<std::string> all_keys();

/// Same values in every field (origins are ignored).
bool operator==(const Config& a, const Config& b);
inline bool operator!=(const Config& a, const Config& b) { return !(a == b); }

}  // namespace xmodal::config

namespace xmodal::config {

/// Every key with its value as YAML scalar text, in declaration order (origins ignored).
std::vector<std::pair<std::string, std::string>> flatten(const Config& config);

namespace detail {
// YAML scalar text of a field value, exact enough to read back bit-identical.
std::string scalar_text(const std::string& value);
std::string scalar_text(double value);
std::string scalar_text(int64_t value);
std::string scalar_text(bool value);
std::string scalar_text(const std::vector<double>& values);
std::string scalar_text(const std::vector<std::string>& values);
inline std::string scalar_text(int value) { return scalar_text(static_cast<int64_t>(value)); }
template <class E, class = std::enable_if_t<std::is_enum_v<E>>>
std::string scalar_text(E value) {
  return to_string(value);
}
}  // namespace detail

}  // namespace xmodal::config
