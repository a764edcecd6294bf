// Parallel loader: worker threads decode, transform and tokenize batches ahead of the trainer
// into a bounded window, returned strictly in order. Shuffling depends only on (seed, epoch)
// and every sample's augmentation on (seed, epoch, sample), so batches are identical whatever
// the number of workers, and position() is a data position a checkpoint can resume from exactly.
#pragma once

#include <torch/types.h>

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <unordered_map>
#include <vector>

#include "xmodal/data/dataset.h"
#include "xmodal/data/transforms.h"
#include "xmodal/text/tokenizer.h"

namespace xmodal::data {

struct Batch {
  torch::Tensor images;          ///< [N, 3, H, W] float32: the batch's distinct images (N <= B)
  torch::Tensor image_index;     ///< [B] int64: each sample's row in `images`
  torch::Tensor input_ids;       ///< [B, L] int64
  torch::Tensor attention_mask;  ///< [B, L] int64 (1 = token, 0 = padding)
  torch::Tensor token_type_ids;  ///< [B, L] int64
  /// The task's targets by the names it gives them (TaskData::collate), empty without.
  Targets targets;
  /// With the auxiliary counting loss: [B, C'] int64 object counts per aux category (clamped to
  /// max_count) where the examples have them, else undefined.
  torch::Tensor aux_counts;
  /// with the dense auxiliary loss: [B, G*G, C] float32, 1 where an object of category c has
  /// its box centre in grid cell (row-major) of the transformed image, else undefined
  torch::Tensor aux_dense;
  /// With the auxiliary locating loss: [B, 2] int64, the aux category of the leftmost and of the
  /// rightmost object by box centre in the transformed image (-1 when none is in view).
  torch::Tensor aux_locate;
  std::vector<int64_t> ids;      ///< question or image ids
  std::vector<int64_t> indices;  ///< example indices in the split
  int64_t epoch = 0;
  int64_t index = 0;    ///< batch number within the epoch
  int64_t skipped = 0;  ///< bad samples dropped from this batch
  std::string bad;      ///< the last of them: "sample ID: what is wrong"

  int64_t size() const { return static_cast<int64_t>(ids.size()); }
  /// The target `name`; throws std::logic_error naming it when the batch has none.
  const torch::Tensor& target(const std::string& name) const;
};

struct LoaderOptions {
  int batch_size = 64;
  int workers = 2;   ///< 0 = build batches on the calling thread
  int prefetch = 4;  ///< batches ready ahead of the consumer
  /// Decoded images kept in memory (shared by the workers, filled until full, never evicted:
  /// each epoch reads every image once per sample, so a full cache serves all reads after the
  /// first epoch's). A grey image whose three channels are equal is kept as one. 0 = off.
  int64_t image_cache_bytes = 0;
  bool shuffle = true;
  bool drop_last = false;
  uint64_t seed = 0;
  bool skip_bad = false;  ///< bad image/text: drop the sample (counted) instead of failing
  /// With skip_bad: next() fails once more than this share of the last bad_window samples read
  /// (or of the epoch's, if fewer) were bad, so that a broken data set stops instead of
  /// skipping without end.
  double max_bad_share = 0.1;
  int64_t bad_window = 1000;
  int max_text_len = 32;
  int max_count = 10;       ///< auxiliary counts are clamped to this
  bool aux_counts = false;  ///< fill Batch::aux_counts (train.aux.counting)
  /// Shuffle images rather than samples, keeping each image's samples together
  /// (data.group_by_image).
  bool group_by_image = false;
  int group_size = 0;       ///< with group_by_image: runs of at most this many samples; 0 = all
  int dense_grid = 0;       ///< fill Batch::aux_dense on a dense_grid^2 grid; 0 = off
  bool aux_locate = false;  ///< fill Batch::aux_locate (train.aux.locate)
  ImageTransformOptions transform;
  /// Data-parallel shard: with world_size processes, global batch k is the k-th run of
  /// batch_size x world_size samples of the epoch's order (padded, by wrapping around, to a
  /// multiple of world_size), and this rank gets the rank-th equal part of it. Every rank has the
  /// same number of batches; together they are exactly the batches of one process with
  /// batch_size x world_size.
  int rank = 0;
  int world_size = 1;
};

class Loader {
 public:
  Loader(std::shared_ptr<const TaskData> data, std::shared_ptr<const text::Tokenizer> tokenizer,
         LoaderOptions options);
  ~Loader();
  Loader(const Loader&) = delete;
  Loader& operator=(const Loader&) = delete;

  int64_t batches_per_epoch() const;

  /// Starts (or restarts) producing `epoch` from batch `first_batch` (a resumed position).
  void start(int64_t epoch, int64_t first_batch = 0);
  /// The next non-empty batch of the epoch, nullopt after the last. Rethrows a worker's error
  /// (with the sample's image path) unless skip_bad.
  std::optional<Batch> next();

  struct Position {
    int64_t epoch = 0;
    int64_t batch = 0;  ///< next batch next() returns
  };
  Position position() const { return {epoch_, next_}; }
  /// Bad samples dropped so far (all epochs).
  int64_t skipped() const;

  /// CPU seconds the loader's work has taken so far (every thread that built a batch, measured
  /// with each thread's own CPU clock): what data loading costs the cores, whatever it overlaps.
  double cpu_seconds() const;

  struct CacheStats {
    int64_t images = 0, bytes = 0, hits = 0, misses = 0;
  };
  CacheStats cache_stats() const;

  /// Builds one batch of `epoch` directly (what the workers do); for tests and benchmarks.
  Batch make_batch(int64_t epoch, int64_t index) const;

 private:
  void stop();
  void work();
  std::optional<Batch> next_raw();
  /// Adds a batch's bad samples to the window; throws when they are over the bound.
  void check_bad_share(const Batch& batch);
  std::vector<int64_t> order_for(int64_t epoch) const;
  /// The decoded RGB image at `path`, from the cache when it is there.
  cv::Mat load_image(const std::string& path) const;

  std::shared_ptr<const TaskData> data_;
  std::shared_ptr<const text::Tokenizer> tokenizer_;
  LoaderOptions options_;

  int64_t epoch_ = 0;
  int64_t next_ = 0;     // next batch to hand out
  int64_t end_ = 0;      // batches in the epoch
  int64_t claimed_ = 0;  // next batch a worker takes
  std::vector<int64_t> order_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::map<int64_t, Batch> ready_;
  std::map<int64_t, std::exception_ptr> errors_;
  bool stopping_ = false;
  int64_t skipped_ = 0;
  // The samples of the last batches handed out (read, bad), for the max_bad_share bound.
  std::deque<std::pair<int64_t, int64_t>> window_;
  int64_t window_read_ = 0, window_bad_ = 0;
  mutable std::atomic<int64_t> bad_seen_{0};  // for rate-limiting the warnings
  std::vector<std::thread> workers_;

  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, cv::Mat> cache_;
  mutable CacheStats cache_stats_;
  mutable std::atomic<int64_t> cpu_ns_{0};
};

/// Loader options from the config (`train` = augmentation on, shuffle on).
LoaderOptions loader_options(const config::Config& config, bool train);

}  // namespace xmodal::data
