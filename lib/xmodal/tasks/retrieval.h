// Retrieval's annotation, and its metrics shared by the task's evaluation, `xmodal eval
// --zero-shot` and the tests (the loss and the evaluation themselves are reached through
// tasks/task.h).
#pragma once

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "xmodal/data/dataset.h"

namespace xmodal::tasks {

/// Task retrieval's annotation of an image-caption pair, where the split knows the image's
/// content (the scenes' COCO instances): its objects per category, for the "same content"
/// recalls. Pairs of a split without instances have no annotation.
struct RetrievalAnnotation : data::Annotation {
  std::vector<int> content;
};

/// i2t_r1 i2t_r5 i2t_r10 t2i_r1 t2i_r5 t2i_r10 rsum (percent; `prefix` before each name) of
/// `similarity` [texts, images], where text t belongs to image text_image[t]: image -> text
/// finds an image at the best rank of its texts, text -> image has one true image (ties count
/// against the query, tasks/metrics.h retrieval_ranks).
/// `i2t_scores` [images, texts], when given, ranks image -> text instead of similarity^T (a
/// re-ranking gives each direction its own scores).
std::map<std::string, double> recall_metrics(const torch::Tensor& similarity,
                                             const std::vector<int64_t>& text_image,
                                             const std::string& prefix = "",
                                             const torch::Tensor& i2t_scores = {});

/// The same as content_i2t_r1 ... content_rsum, where any image whose content key equals that
/// of the text's image counts as found (and, image -> text, any text of such an image).
std::map<std::string, double> content_recall_metrics(const torch::Tensor& similarity,
                                                     const std::vector<int64_t>& text_image,
                                                     const std::vector<int64_t>& image_content);

/// The markdown table of the recalls under `prefix`, and their rsum.
std::string recall_table(const std::map<std::string, double>& metrics, const std::string& prefix,
                         const std::string& title);

}  // namespace xmodal::tasks
