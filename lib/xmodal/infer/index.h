// `xmodal index` and `xmodal search`: a folder of images (or a split's) embedded once by a
// retrieval checkpoint, then queried by text or image.
//
// INDEX_DIR holds
//   current                 a link to the generation in use, gen-N
//   gen-N/embeddings.safetensors  "embeddings" [N, E] float32, L2-normalised, row i = paths[i]
//   gen-N/paths.json        the image paths, absolute (UTF-8), in index order
//   gen-N/faiss.index       with --backend ivf | hnsw: the approximate index (FAISS)
//   gen-N/manifest.json     format, version 2, the checkpoint and its identity
//                           (infer/retrieval.h), E, N, the backend and its options, and each
//                           file's size and CRC32 (checked by every reader)
// An update (--append) writes gen-(N+1) beside gen-N, switches `current` in one rename and
// then removes gen-N: a kill or an error at any moment leaves the previous index usable, and
// the next writer sweeps what a killed one left. Version 1 indexes (the four files directly
// in INDEX_DIR) are still read; --append turns one into a generation.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "xmodal/infer/vector_index.h"

namespace xmodal::infer {

struct IndexOptions {
  std::string checkpoint;  ///< a retrieval checkpoint (dir, best/last link or run dir)
  std::string images;      ///< a folder, searched recursively for images, or
  std::string split;       ///< a split of the checkpoint's data set (its distinct images)
  std::string out;         ///< INDEX_DIR
  bool append = false;     ///< add the images not yet in INDEX_DIR (same checkpoint)
  std::string backend = "flat";
  AnnOptions ann;
  int batch_size = 64;
  std::vector<std::string> overrides;  ///< applied to the checkpoint's config (run.threads, ...)
};

struct IndexReport {
  int64_t added = 0, skipped = 0, total = 0;
  std::string first_bad;  ///< the first skipped image and why
  double seconds = 0, images_per_second = 0;
};

/// Builds or extends INDEX_DIR. Unreadable images are skipped, counted and the first reported;
/// it fails (std::runtime_error) only when no image could be read. Throws std::invalid_argument
/// for bad options (a non-retrieval checkpoint, --append to an index of another checkpoint).
IndexReport build_index(const IndexOptions& options);

struct SearchOptions {
  std::string index;       ///< INDEX_DIR
  std::string checkpoint;  ///< "" = the one the index was built with (its identity is checked)
  std::string text;        ///< a text query, or
  std::string image;       ///< an image query
  int64_t top_k = 10;
  std::string backend;  ///< "" = the index's; flat (exact) always works
  AnnOptions ann;
  std::vector<std::string> overrides;
};

struct SearchHit {
  int64_t rank = 0;  ///< 1 = best
  std::string path;
  double score = 0;  ///< cosine similarity
};

/// An index read into memory once (for `xmodal serve`): the embeddings, paths and, for an
/// approximate backend, the FAISS index. Queries are embeddings of the index's checkpoint.
class ImageIndex {
 public:
  /// Reads INDEX_DIR (std::runtime_error when unreadable or inconsistent). `checkpoint_identity`
  /// non-empty: std::invalid_argument unless the index was built with weights of that identity.
  /// `backend` "" = the index's own.
  static ImageIndex open(const std::string& dir, const std::string& checkpoint_identity,
                         const std::string& backend = "", const AnnOptions& ann = {});
  ImageIndex(ImageIndex&&) noexcept;
  ImageIndex& operator=(ImageIndex&&) noexcept;
  ~ImageIndex();

  /// The top_k images for each query row [Q, E], best first (fewer when the index is smaller).
  std::vector<std::vector<SearchHit>> search(const torch::Tensor& queries, int64_t top_k) const;
  int64_t size() const;
  int64_t dim() const;
  const std::string& dir() const { return dir_; }
  const std::string& checkpoint() const { return checkpoint_; }  ///< the one it was built with
  const std::string& backend() const { return backend_; }

 private:
  ImageIndex() = default;
  std::string dir_, checkpoint_, backend_;
  torch::Tensor embeddings_;
  std::vector<std::string> paths_;
  std::unique_ptr<AnnIndex> ann_;
};

/// The top_k indexed images for the query, best first. Throws std::invalid_argument when the
/// checkpoint is not the index's (by identity) or the options are bad, std::runtime_error for
/// an unreadable or inconsistent index.
std::vector<SearchHit> search_index(const SearchOptions& options);

}  // namespace xmodal::infer
