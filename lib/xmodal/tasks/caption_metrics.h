// COCO caption metrics computed as the official evaluation code computes them (pycocoevalcap
// 1.2, the tylin/coco-caption code on PyPI), on captions tokenized as it tokenizes them
// (tasks/ptb_tokenizer.h):
//   - BLEU-1..4: corpus-level (clipped n-gram counts and lengths summed over the images, the
//     reference length of each image the one closest to its candidate, ties to the shorter),
//     per image the same with the official 1e-15 / 1e-9 smoothing;
//   - ROUGE-L: the F-measure of the longest common subsequence with beta 1.2, from the best
//     precision and the best recall over the references, averaged over the images;
//   - CIDEr-D (printed "CIDEr" by the official code): tf-idf n-gram vectors (n = 1..4) with
//     document frequencies from the references of the evaluated images, the candidate's counts
//     clipped by the reference's, a Gaussian length penalty (sigma 6, lengths counted in
//     bigrams as the official code does), averaged over references and n, times 10.
// METEOR and SPICE are not provided (both are Java programs with their own resources).
// tests/tasks/caption_metrics_test.cpp checks every figure, overall and per image, against the
// official code's output on fixture result sets (scripts/make_caption_metric_fixtures.py).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::tasks {

struct CaptionScores {
  std::array<double, 4> bleu{};  ///< BLEU-1..4 in [0, 1]
  double rouge_l = 0;
  double cider_d = 0;
};

struct CaptionEvaluation {
  CaptionScores overall;
  std::vector<int64_t> image_ids;        ///< in the order given
  std::vector<CaptionScores> per_image;  ///< one per image id
};

/// Scores one tokenized candidate per image against its tokenized references (each image at
/// least one). Tokenized means coco_caption_tokenize()d: words separated by single spaces.
CaptionEvaluation score_captions(const std::vector<int64_t>& image_ids,
                                 const std::vector<std::string>& candidates,
                                 const std::vector<std::vector<std::string>>& references);

/// `xmodal score --task caption`: a results file [{"image_id": int, "caption": str}, ...]
/// against reference captions, either COCO's captions_*.json ({"annotations": [{"image_id",
/// "caption"}]}) or a Karpathy split file ({"images": [{"cocoid" | "imgid", "sentences":
/// [{"raw"}]}]}). Both sides are tokenized as the official code does; the images scored are
/// the results' (each must have references and appear once). Throws std::runtime_error naming
/// the file and the record.
CaptionEvaluation score_caption_results(const std::string& results_path,
                                        const std::string& references_path);

/// The official printout ("Bleu_1: 0.702" ...) and JSON with the official key names
/// ({"overall": {"Bleu_1", ..., "ROUGE_L", "CIDEr"}, "per_image": [{"image_id", ...}]}).
std::string format_caption_scores(const CaptionEvaluation& e);
std::string caption_scores_json(const CaptionEvaluation& e, bool per_image);

}  // namespace xmodal::tasks
