// Prediction and explanation from a checkpoint: `xmodal predict` and `xmodal explain`.
//
// Results are types (Prediction, tasks::Answer, Explanation); infer/json.h writes them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/tasks/answer.h"

namespace cv {
class Mat;
}
namespace xmodal::checkpoint {
struct LoadedModel;
}

namespace xmodal::infer {

/// The method `xmodal explain` uses unless told (docs/explain.md measures why).
inline constexpr const char* kDefaultExplainMethod = "rollout";

struct PredictorOptions {
  std::string checkpoint;
  /// Config assignments applied to the checkpoint's config (run.threads, run.device, ...).
  std::vector<std::string> overrides;
  int top_k = 5;
  /// retrieval: rank these labels for each image (zero-shot, with the checkpoint's
  /// eval.prompts); the text may then be empty.
  std::vector<std::string> labels;
};

struct Input {
  std::string image;
  std::string text;
};

/// One input's result: its answer, or why it failed.
struct Prediction {
  std::string image, text;  ///< the input's
  std::string error;        ///< why it failed (unreadable image, empty text); empty: it did not
  tasks::Answer answer;

  bool ok() const { return error.empty(); }
};

struct PreparedInput;  // infer/prepared_input.h
struct Embeddings;     // infer/prepared_input.h

/// What explain() found: the answer and the relevance of every token to it.
struct Explanation {
  std::string answer;               ///< vqa: the top answer; counting: the most probable category;
                                    ///< retrieval: "match"
  double probability = 0;           ///< sigmoid of its score; retrieval: the cosine similarity
  int64_t target = -1;              ///< the class explained (retrieval: 0, the similarity)
  std::vector<std::string> tokens;  ///< the text's tokens ([CLS] and [SEP] included)
  std::vector<double> token_weights;  ///< relevance per token (all tokens sum to 1 with patches)
  int grid = 0;                       ///< patches per image side
  std::vector<double> patch_weights;  ///< relevance per patch, row-major grid x grid
  std::string method;
};

class Predictor {
 public:
  explicit Predictor(const PredictorOptions& options);
  ~Predictor();
  Predictor(const Predictor&) = delete;
  Predictor& operator=(const Predictor&) = delete;

  /// One result per input, in order; an input that fails (unreadable image, empty text) gets
  /// its error and the others go on.
  std::vector<Prediction> predict(const std::vector<Input>& inputs);

  /// The image (a file) and text of `input` made ready for run(). Throws
  /// std::invalid_argument (empty text for a model that reads text) or std::runtime_error (an
  /// unreadable image, naming it). Safe to call from several threads at once, also while
  /// another thread is in run() or embed().
  std::unique_ptr<PreparedInput> prepare(const Input& input) const;
  /// The same for an image already decoded (8-bit RGB, e.g. io::decode_image_rgb).
  std::unique_ptr<PreparedInput> prepare(const cv::Mat& rgb, const std::string& text) const;
  /// For embed(): an image alone (`rgb` empty: none) and/or a text alone (`text` null: none).
  std::unique_ptr<PreparedInput> prepare_parts(const cv::Mat& rgb, const std::string* text) const;

  /// One forward pass over `items` (prepared inputs with image and text), without gradients:
  /// each item's answer (top_k[i] classes where the task ranks them). One thread at a time.
  std::vector<tasks::Answer> run(const std::vector<const PreparedInput*>& items,
                                 const std::vector<int>& top_k);

  /// retrieval: the L2-normalised embeddings of the images and texts of `items`, one pass per
  /// encoder. One thread at a time.
  Embeddings embed(const std::vector<const PreparedInput*>& items);

  /// Relevance of image patches and words for the top prediction (infer/explain.h):
  ///   rollout   attention rollout (Abnar & Zuidema 2020) of the fusion's layers, the image
  ///             tokens as the fusion receives them standing for their patches (the default:
  ///             it measures best, docs/explain.md)
  ///   chefer    Chefer et al. 2021's gradient-weighted relevance through every attention
  ///             layer: the fusion's, then into each encoder's tokens (answer-specific)
  ///   gradient  the old name of chefer (it used the fusion's layers alone, and pointed at the
  ///             background)
  /// vqa and counting need fusion.mode concat; retrieval explains the cosine similarity of the
  /// image and the text through each encoder's layers. Weights of the words and patches sum
  /// to 1; a hidden patch (PreparedInput::hidden_patches) gets 0.
  Explanation explain(const Input& input, const std::string& method = kDefaultExplainMethod);
  /// The same for a prepared input (its hidden_patches hidden from every attention layer), for
  /// class `target` (-1: the top one).
  Explanation explain(const PreparedInput& input, const std::string& method, int64_t target = -1);
  /// What explain() calls the probability of class `target`, for each item (e.g. one image
  /// with patches blanked): the sigmoid of its score; retrieval (target 0): the cosine
  /// similarity. One thread at a time.
  std::vector<double> target_scores(const std::vector<const PreparedInput*>& items, int64_t target);

  const checkpoint::LoadedModel& loaded() const { return *loaded_; }

 private:
  std::unique_ptr<checkpoint::LoadedModel> loaded_;
  PredictorOptions options_;
  std::unique_ptr<Embeddings> labels_;  // retrieval with labels: their embeddings, made once
  bool warned_non_finite_ = false;
};

/// Writes the explanation as a PNG (atomically): the image (resized to `side` pixels) and the
/// same with the heat map over it, side by side, both outlining the patches that hold half of
/// the image's relevance and numbering the top 3; under them the answer and its probability,
/// the method, and every word with a bar for its weight.
void write_heat_map(const std::string& image_path, const Explanation& e, const std::string& out_png,
                    int side = 384);

}  // namespace xmodal::infer
