// The offline default data set: Fashion-MNIST articles composed into scenes, written in both
// the COCO (instances + captions) and the VQA v2 (questions + annotations) layouts so that the
// real COCO and VQA readers read it (docs/design.md section 4).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::data {

struct ScenesOptions {
  std::string out = "data/fashion-scenes";
  std::string fashion_mnist = "/usr/share/datasets/fashion-mnist";
  int train = 10000, val = 1000, test = 1000;  ///< scenes per split
  int canvas = 96;                             ///< square canvas side, pixels
  int min_items = 1, max_items = 6;            ///< articles per scene
  int item_min = 22, item_max = 34;            ///< article side, pixels
  uint64_t seed = 1234;
  /// What the five captions of a scene say (the counting task's text): "partial" (the
  /// default) names a random subset of the scene's classes, each with a vague quantity ("at
  /// least one", "one or two", "a few", "some", "several", "many"), so exact counts and the
  /// unnamed classes need the image; "full" states every class with its exact count (sets made
  /// before partial captions; its counting task can be read from the text alone). Questions and
  /// images do not depend on it.
  std::string captions = "partial";
  /// Replace a scenes set made with other options at `out` (never a folder of other files).
  bool overwrite = false;
};

/// Answer counts of one split, per answer type.
struct ScenesSplitReport {
  std::string split;
  int64_t scenes = 0, questions = 0;
  std::vector<std::pair<std::string, std::vector<std::pair<std::string, int64_t>>>> answers;
};

/// Fashion-MNIST class names (singular, as in the COCO categories) and their plurals.
const std::vector<std::string>& fashion_class_names();
const std::vector<std::string>& fashion_class_plurals();

/// The scenes' questions about category `category` (an index of fashion_class_names()), worded
/// as the generator words them: "is there a shirt?", "how many shirts are there?".
std::string presence_question(int category);
std::string count_question(int category);

/// Builds train/val/test under options.out (train scenes from Fashion-MNIST's train images,
/// val and test from its t10k images) and records the options in OUT/scenes.json. Same
/// options, same bytes. A set with the same options already at `out` is left as it is
/// (returns no reports); other options need `overwrite`; the set is built beside `out` and
/// renamed into place, so no old file stays mixed in. Throws std::invalid_argument
/// for inconsistent options, std::runtime_error for unreadable inputs or unwritable outputs.
std::vector<ScenesSplitReport> build_scenes(const ScenesOptions& options);

/// A markdown table of the answer distribution per type (the share of the most common answers).
std::string format_scenes_report(const std::vector<ScenesSplitReport>& reports);

}  // namespace xmodal::data
