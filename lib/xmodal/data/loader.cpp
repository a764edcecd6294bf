#include "xmodal/data/loader.h"

#include <ATen/Parallel.h>
#include <dlfcn.h>
#include <torch/torch.h>
#include <opencv2/imgproc.hpp>

#include <time.h>

#include <algorithm>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <utility>

#include "xmodal/core/logging.h"
#include "xmodal/io/image.h"

namespace xmodal::data {
namespace {

// An in-memory 8-bit image (grey, RGB) as the RGB image the transforms expect.
// A loader thread's ATen ops (collating a batch is above ATen's parallel grain) would otherwise
// start an OpenMP team per loader thread, whose threads spin on the cores the training step
// needs. OpenMP thread counts are per thread: this one gets 1, the step keeps its own.
void single_compute_thread_here() {
  at::get_num_threads();  // ATen's per-thread lazy init first: it would undo the line below
  using SetThreads = void (*)(int);
  if (auto set = reinterpret_cast<SetThreads>(dlsym(RTLD_DEFAULT, "omp_set_num_threads"))) set(1);
}

int64_t thread_cpu_ns() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<int64_t>(t.tv_sec) * 1000000000 + t.tv_nsec;
}

// Adds the CPU time of the enclosing scope, on this thread, to a counter.
struct CpuTimer {
  std::atomic<int64_t>& total;
  int64_t start = thread_cpu_ns();
  ~CpuTimer() { total.fetch_add(thread_cpu_ns() - start, std::memory_order_relaxed); }
};

// An RGB image whose three channels are equal, as one channel; else the image itself.
cv::Mat compact(const cv::Mat& rgb) {
  for (int y = 0; y < rgb.rows; ++y) {
    const uint8_t* p = rgb.ptr<uint8_t>(y);
    for (int x = 0; x < rgb.cols; ++x, p += 3) {
      if (p[0] != p[1] || p[0] != p[2]) return rgb;
    }
  }
  cv::Mat grey;
  cv::extractChannel(rgb, grey, 0);
  return grey;
}

cv::Mat to_rgb(const cv::Mat& pixels) {
  if (pixels.channels() == 3) return pixels;
  cv::Mat rgb;
  cv::cvtColor(pixels, rgb, cv::COLOR_GRAY2RGB);
  return rgb;
}

}  // namespace

const torch::Tensor& Batch::target(const std::string& name) const {
  const auto it = targets.find(name);
  if (it == targets.end() || !it->second.defined()) {
    throw std::logic_error("batch target '" + name + "': the task that read this split makes none");
  }
  return it->second;
}

Loader::Loader(std::shared_ptr<const TaskData> data,
               std::shared_ptr<const text::Tokenizer> tokenizer, LoaderOptions options)
    : data_(std::move(data)), tokenizer_(std::move(tokenizer)), options_(std::move(options)) {
  if (options_.batch_size < 1) throw std::invalid_argument("loader: batch_size must be >= 1");
  if (options_.world_size < 1 || options_.rank < 0 || options_.rank >= options_.world_size) {
    throw std::invalid_argument("loader: rank " + std::to_string(options_.rank) +
                                " is outside world size " + std::to_string(options_.world_size));
  }
  if (options_.prefetch < 1) options_.prefetch = 1;
}

Loader::~Loader() { stop(); }

namespace {

// Samples of an epoch padded to a multiple of the world size (DistributedSampler's rule).
int64_t padded_size(int64_t n, int world) { return (n + world - 1) / world * world; }

}  // namespace

int64_t Loader::batches_per_epoch() const {
  const int64_t n = padded_size(static_cast<int64_t>(data_->examples.size()), options_.world_size);
  const int64_t b = static_cast<int64_t>(options_.batch_size) * options_.world_size;
  return options_.drop_last ? n / b : (n + b - 1) / b;
}

std::vector<int64_t> Loader::order_for(int64_t epoch) const {
  std::vector<int64_t> order(data_->examples.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int64_t>(i);
  if (!options_.shuffle) return order;
  // Fisher-Yates on raw generator bits: the same permutation on every platform.
  std::mt19937_64 rng(mix_seed(options_.seed, 0x0DE7, static_cast<uint64_t>(epoch)));
  const auto shuffle = [&rng](auto& v) {
    for (size_t i = v.size(); i > 1; --i) std::swap(v[i - 1], v[rng() % i]);
  };
  if (!options_.group_by_image) {
    shuffle(order);
    return order;
  }
  // Images in random order, each image's examples together (in random order too), so that a
  // batch holds few distinct images and each is encoded once; with group_size, an image's
  // examples form runs of at most that many, and the runs are shuffled.
  std::map<std::string, std::vector<int64_t>> by_image;
  std::vector<std::vector<int64_t>*> images;
  for (size_t i = 0; i < data_->examples.size(); ++i) {
    auto [it, fresh] = by_image.try_emplace(data_->examples[i].image_path);
    if (fresh) images.push_back(&it->second);
    it->second.push_back(static_cast<int64_t>(i));
  }
  std::vector<std::vector<int64_t>> runs;
  for (auto* examples : images) {
    shuffle(*examples);
    const size_t size =
        options_.group_size > 0 ? static_cast<size_t>(options_.group_size) : examples->size();
    for (size_t begin = 0; begin < examples->size(); begin += size) {
      const size_t end = std::min(begin + size, examples->size());
      runs.emplace_back(examples->begin() + static_cast<std::ptrdiff_t>(begin),
                        examples->begin() + static_cast<std::ptrdiff_t>(end));
    }
  }
  shuffle(runs);
  order.clear();
  for (const auto& run : runs) order.insert(order.end(), run.begin(), run.end());
  return order;
}

cv::Mat Loader::load_image(const std::string& path) const {
  if (options_.image_cache_bytes > 0) {
    cv::Mat kept;  // shares the cached pixels; converted outside the lock
    {
      std::lock_guard<std::mutex> lock(cache_mutex_);
      const auto found = cache_.find(path);
      if (found != cache_.end()) {
        ++cache_stats_.hits;
        kept = found->second;
      } else {
        ++cache_stats_.misses;
      }
    }
    if (!kept.empty()) return to_rgb(kept);
  }
  cv::Mat rgb = io::read_image_rgb(path);
  if (options_.image_cache_bytes > 0) {
    cv::Mat kept = compact(rgb);
    const int64_t bytes = static_cast<int64_t>(kept.total() * kept.elemSize());
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_stats_.bytes + bytes <= options_.image_cache_bytes &&
        cache_.emplace(path, kept).second) {
      ++cache_stats_.images;
      cache_stats_.bytes += bytes;
    }
  }
  return rgb;
}

double Loader::cpu_seconds() const { return static_cast<double>(cpu_ns_.load()) * 1e-9; }

Loader::CacheStats Loader::cache_stats() const {
  std::lock_guard<std::mutex> lock(cache_mutex_);
  return cache_stats_;
}

namespace {

// The first ten bad samples are listed, then a count at 20, 30, ..., 100, 200, ...: a set of
// broken images must not fill the disk with warnings. `seen` counts this one.
void warn_bad_sample(const std::string& bad, int64_t seen) {
  if (seen <= 10) {
    log::warn("[data] skipping {}{}", bad,
              seen == 10 ? " (further bad samples are counted, not listed)" : "");
  } else if (seen % 10 == 0 &&
             std::to_string(seen).find_first_not_of('0', 1) == std::string::npos) {
    log::warn("[data] {} bad samples skipped so far", seen);
  }
}

// Where an object's box centre lands in the transformed image, as fractions (u, v) in [0, 1) of
// its width and height before any mirroring; nothing when a crop cut it away.
std::optional<std::pair<double, double>> centre_in(const TransformedImage& image,
                                                   const CocoObject& object) {
  const double u = (object.cx - image.region.x) / image.region.width;
  const double v = (object.cy - image.region.y) / image.region.height;
  if (!(u >= 0 && u < 1 && v >= 0 && v < 1)) return std::nullopt;
  return std::make_pair(u, v);
}

// The dense auxiliary targets of one sample: 1 for (cell, category) where an object of the
// category has its box centre in that grid cell of the transformed image.
void add_dense_targets(std::vector<float>& dense, const Example& e, const TransformedImage& image,
                       int64_t grid, int64_t aux_classes) {
  const size_t row = dense.size();
  dense.resize(row + grid * grid * aux_classes, 0.0f);
  for (const CocoObject& object : e.objects) {
    const auto centre = centre_in(image, object);
    if (!centre) continue;
    const auto [u, v] = *centre;
    int64_t column = static_cast<int64_t>(u * grid);
    if (image.flipped) column = grid - 1 - column;  // the mirrored cell, exactly
    const int64_t cell = static_cast<int64_t>(v * grid) * grid + column;
    dense[row + cell * aux_classes + object.category] = 1.0f;
  }
}

// The auxiliary locating targets of one sample: the category of the leftmost and of the
// rightmost object by box centre in the transformed image (the first of equal centres, as the
// scenes' "leftmost item" answers), -1 where no object is in view.
void add_locate_targets(std::vector<int64_t>& locate, const Example& e,
                        const TransformedImage& image) {
  int64_t left = -1, right = -1;
  double left_u = 0, right_u = 0;
  for (const CocoObject& object : e.objects) {
    const auto centre = centre_in(image, object);
    if (!centre) continue;
    const double u = image.flipped ? 1 - centre->first : centre->first;
    if (left < 0 || u < left_u) left = object.category, left_u = u;
    if (right < 0 || u > right_u) right = object.category, right_u = u;
  }
  locate.push_back(left);
  locate.push_back(right);
}

// The auxiliary counting targets of a batch, sample by sample (clamped to max_count), for the
// examples that have them (vqa's, with train.aux.counting).
class AuxCountRows {
 public:
  AuxCountRows(bool on, int64_t classes, int64_t max_count)
      : on_(on && classes > 0), classes_(classes), max_count_(max_count) {}

  void add(const Example& e) {
    if (!on_ || static_cast<int64_t>(e.aux_counts.size()) != classes_) {
      complete_ = false;
      return;
    }
    for (int64_t c = 0; c < classes_; ++c) {
      rows_.push_back(std::min<int64_t>(e.aux_counts[c], max_count_));
    }
  }

  // [b, classes] int64 when every sample had them, else undefined.
  torch::Tensor tensor(int64_t b) const {
    if (!on_ || !complete_) return {};
    return torch::tensor(rows_, torch::kLong).view({b, classes_});
  }

 private:
  bool on_;
  int64_t classes_, max_count_;
  bool complete_ = true;
  std::vector<int64_t> rows_;
};

}  // namespace

Batch Loader::make_batch(int64_t epoch, int64_t index) const {
  const CpuTimer timer{cpu_ns_};
  std::vector<int64_t> other_epoch;
  const std::vector<int64_t>* order_ptr = &order_;
  if (epoch != epoch_ || order_.empty()) {
    other_epoch = order_for(epoch);
    order_ptr = &other_epoch;
  }
  const std::vector<int64_t>& order = *order_ptr;
  // This rank's part of global batch `index` (the whole batch with one process).
  const int world = options_.world_size;
  const int64_t n = static_cast<int64_t>(order.size());
  const int64_t global = static_cast<int64_t>(options_.batch_size) * world;
  const int64_t global_begin = index * global;
  const int64_t global_size = std::min(global, padded_size(n, world) - global_begin);
  TORCH_CHECK(n > 0 && global_size > 0, "loader: batch ", index, " is past the end of the epoch");
  const int64_t begin = global_begin + global_size / world * options_.rank;
  const int64_t end = begin + global_size / world;
  Batch batch;
  batch.epoch = epoch;
  batch.index = index;
  std::vector<torch::Tensor> images;
  std::vector<int64_t> image_index;  // per sample: its row in `images`
  // Each distinct image of the batch is decoded and transformed once (with the augmentation
  // drawn for its first sample); the samples that share it share that result.
  std::map<std::string, std::pair<int64_t, TransformedImage>> decoded;
  std::vector<int64_t> ids, mask, types;
  const int length = options_.max_text_len;
  const int64_t aux_classes = static_cast<int64_t>(data_->aux_class_names.size());
  AuxCountRows aux_counts(options_.aux_counts, aux_classes, options_.max_count);
  std::vector<const Example*> rows;
  const int64_t grid = aux_classes > 0 ? options_.dense_grid : 0;
  std::vector<float> dense;
  std::vector<int64_t> locate;
  for (int64_t k = begin; k < end; ++k) {
    const int64_t i = order[k % n];  // positions past the end wrap around (padding)
    const Example& e = data_->examples[i];
    std::mt19937_64 rng(
        mix_seed(options_.seed, static_cast<uint64_t>(epoch), static_cast<uint64_t>(i)));
    std::string text = e.texts.empty() ? "" : e.texts[rng() % e.texts.size()];
    const auto found = e.pixels.empty() ? decoded.find(e.image_path) : decoded.end();
    const TransformedImage* shared = nullptr;
    TransformedImage own;  // an in-memory image: never shared
    if (found != decoded.end()) {
      shared = &found->second.second;
      image_index.push_back(found->second.first);
    } else {
      try {
        own = transform_image(e.pixels.empty() ? load_image(e.image_path) : to_rgb(e.pixels),
                              options_.transform, rng);
      } catch (const std::exception& error) {
        if (!options_.skip_bad) throw;
        ++batch.skipped;
        batch.bad = "sample " + std::to_string(e.id) + ": " + error.what();
        warn_bad_sample(batch.bad, ++bad_seen_);
        continue;
      }
      images.push_back(own.pixels);
      const auto row = static_cast<int64_t>(images.size()) - 1;
      image_index.push_back(row);
      shared = e.pixels.empty()
                   ? &decoded.emplace(e.image_path, std::make_pair(row, std::move(own)))
                          .first->second.second
                   : &own;
    }
    const TransformedImage& image = *shared;
    if (image.flipped) text = swap_left_right(text);
    if (grid > 0) add_dense_targets(dense, e, image, grid, aux_classes);
    if (options_.aux_locate && aux_classes > 0) add_locate_targets(locate, e, image);
    const text::Encoding enc = tokenizer_->encode(text, length);
    ids.insert(ids.end(), enc.ids.begin(), enc.ids.end());
    mask.insert(mask.end(), enc.mask.begin(), enc.mask.end());
    types.insert(types.end(), enc.types.begin(), enc.types.end());
    batch.ids.push_back(e.id);
    batch.indices.push_back(i);
    rows.push_back(&e);
    aux_counts.add(e);
  }
  const int64_t b = batch.size();
  if (b == 0) return batch;
  if (grid > 0) {
    batch.aux_dense = torch::tensor(dense, torch::kFloat32).view({b, grid * grid, aux_classes});
  }
  if (!locate.empty()) batch.aux_locate = torch::tensor(locate, torch::kLong).view({b, 2});
  batch.images = torch::stack(images);
  batch.image_index = torch::tensor(image_index, torch::kLong);
  batch.input_ids = torch::tensor(ids, torch::kLong).view({b, length});
  batch.attention_mask = torch::tensor(mask, torch::kLong).view({b, length});
  batch.token_type_ids = torch::tensor(types, torch::kLong).view({b, length});
  batch.aux_counts = aux_counts.tensor(b);
  if (data_->collate) batch.targets = data_->collate(rows);
  return batch;
}

void Loader::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  for (auto& t : workers_) t.join();
  workers_.clear();
  std::lock_guard<std::mutex> lock(mutex_);
  stopping_ = false;
  ready_.clear();
  errors_.clear();
}

void Loader::start(int64_t epoch, int64_t first_batch) {
  stop();
  epoch_ = epoch;
  order_ = order_for(epoch);
  end_ = batches_per_epoch();
  next_ = std::min(first_batch, end_);
  claimed_ = next_;
  for (int w = 0; w < options_.workers; ++w) workers_.emplace_back([this] { work(); });
}

void Loader::work() {
  torch::NoGradGuard
      no_grad;  // plain tensors (not inference tensors: the trainer saves them for backward)
  single_compute_thread_here();
  while (true) {
    int64_t index;
    {
      std::unique_lock<std::mutex> lock(mutex_);
      changed_.wait(lock, [&] {
        return stopping_ || (claimed_ < end_ && claimed_ < next_ + options_.prefetch);
      });
      if (stopping_) return;
      index = claimed_++;
    }
    std::optional<Batch> batch;
    std::exception_ptr error;
    try {
      batch = make_batch(epoch_, index);
    } catch (...) {
      error = std::current_exception();
    }
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (error) {
        errors_[index] = error;
      } else {
        ready_[index] = std::move(*batch);
      }
    }
    changed_.notify_all();
  }
}

std::optional<Batch> Loader::next() {
  // A batch whose every sample was skipped as bad is not handed out.
  while (auto batch = next_raw()) {
    check_bad_share(*batch);
    if (batch->size() > 0) return batch;
  }
  return std::nullopt;
}

void Loader::check_bad_share(const Batch& batch) {
  if (!options_.skip_bad) return;
  const int64_t read = batch.size() + batch.skipped;
  window_.emplace_back(read, batch.skipped);
  window_read_ += read;
  window_bad_ += batch.skipped;
  while (window_.size() > 1 && window_read_ - window_.front().first >= options_.bad_window) {
    window_read_ -= window_.front().first;
    window_bad_ -= window_.front().second;
    window_.pop_front();
  }
  const auto epoch_samples = static_cast<int64_t>(
      (data_->examples.size() + options_.world_size - 1) / options_.world_size);
  const int64_t enough = std::max<int64_t>(1, std::min(options_.bad_window, epoch_samples));
  if (window_bad_ > 0 && window_read_ >= enough &&
      static_cast<double>(window_bad_) >
          options_.max_bad_share * static_cast<double>(window_read_)) {
    throw std::runtime_error(fmt::format(
        "[data] {} of the last {} samples read were bad, more than data.max_bad_share ({}) "
        "allows; the last: {}. Fix or remove them, or raise data.max_bad_share",
        window_bad_, window_read_, options_.max_bad_share, batch.bad.empty() ? "?" : batch.bad));
  }
}

std::optional<Batch> Loader::next_raw() {
  if (next_ >= end_) return std::nullopt;
  Batch batch;
  if (workers_.empty()) {
    torch::NoGradGuard no_grad;  // plain tensors, as the workers make (not inference tensors)
    batch = make_batch(epoch_, next_);
  } else {
    std::unique_lock<std::mutex> lock(mutex_);
    changed_.wait(lock, [&] { return ready_.count(next_) || errors_.count(next_); });
    if (errors_.count(next_)) {
      const auto error = errors_[next_];
      errors_.erase(next_);
      lock.unlock();
      std::rethrow_exception(error);
    }
    batch = std::move(ready_[next_]);
    ready_.erase(next_);
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    ++next_;
    skipped_ += batch.skipped;
  }
  changed_.notify_all();
  return batch;
}

int64_t Loader::skipped() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return skipped_;
}

LoaderOptions loader_options(const config::Config& c, bool train) {
  LoaderOptions o;
  o.batch_size = train ? c.train.batch_size : c.eval.batch_size;
  o.workers = c.data.workers;
  o.prefetch = c.data.prefetch;
  o.image_cache_bytes = static_cast<int64_t>(c.data.image_cache_mb) << 20;
  o.shuffle = train;
  o.drop_last = false;
  o.seed = static_cast<uint64_t>(c.run.seed);
  o.skip_bad = c.data.on_bad_sample == config::BadSample::skip;
  o.max_bad_share = c.data.max_bad_share;
  o.max_text_len = c.data.max_text_len;
  o.max_count = c.model.head.max_count;
  o.group_by_image = train && c.data.group_by_image;
  o.group_size = c.data.group_size;
  o.aux_counts = train && c.train.aux.counting > 0;
  o.aux_locate = train && c.train.aux.locate > 0;
  if (train && c.train.aux.dense > 0) o.dense_grid = c.data.image_size / c.model.vision.patch_size;
  auto& t = o.transform;
  t.size = c.data.image_size;
  t.shorter_side = c.data.resize == config::ResizeMode::shorter_side;
  for (int i = 0; i < 3; ++i) {
    t.mean[i] = static_cast<float>(c.data.mean[i]);
    t.std[i] = static_cast<float>(c.data.stddev[i]);
  }
  t.train = train;
  t.random_resized_crop = c.data.augment.random_resized_crop;
  t.crop_scale_min = c.data.augment.crop_scale_min;
  t.hflip = c.data.augment.hflip;
  t.color_jitter = c.data.augment.color_jitter;
  if (c.data.augment.zoom_out.size() == 2) {
    t.zoom_out_min = c.data.augment.zoom_out[0];
    t.zoom_out_max = c.data.augment.zoom_out[1];
  }
  return o;
}

}  // namespace xmodal::data
