// The dynamic-batching queue of `xmodal serve`: HTTP threads push the items of a request, the
// model thread pops batches of up to max_batch items, waiting at most max_delay after the
// oldest item for more to arrive (Triton's max_queue_delay). Bounded: a push that would exceed
// the capacity is refused whole (the server answers 503), so nothing queues without limit.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace xmodal::serve {

struct BatchOptions {
  size_t max_batch = 16;                      ///< items per model execution, at most
  std::chrono::microseconds max_delay{5000};  ///< after the oldest queued item
  size_t capacity = 256;                      ///< items queued, at most
};

/// `Item` has `int group` (items of different groups never share a batch: predict vs embed)
/// and `std::chrono::steady_clock::time_point enqueued`. One consumer thread (pop); any number
/// of producers.
template <class Item>
class BatchQueue {
 public:
  explicit BatchQueue(BatchOptions options) : options_(options) {
    if (options_.max_batch == 0) options_.max_batch = 1;
  }

  /// Queues all of `items` in order, or none: false when they do not fit in the capacity or
  /// the queue is stopped.
  bool push(std::vector<Item>& items) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopped_ || queue_.size() + items.size() > options_.capacity) return false;
      for (auto& item : items) queue_.push_back(std::move(item));
    }
    ready_.notify_all();
    return true;
  }

  /// The next batch (items of the front item's group, in queue order): blocks until one is
  /// ready. false once the queue is stopped and empty (a stopped queue still hands out what it
  /// holds).
  bool pop(std::vector<Item>& batch) {
    batch.clear();
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return !queue_.empty() || stopped_; });
    if (queue_.empty()) return false;
    const auto deadline = queue_.front().enqueued + options_.max_delay;
    ready_.wait_until(lock, deadline,
                      [&] { return stopped_ || front_group() >= options_.max_batch; });
    const size_t n = front_group();
    for (size_t i = 0; i < n; ++i) {
      batch.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    return true;
  }

  /// No more pushes; pop() drains what is queued, then returns false.
  void stop() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopped_ = true;
    }
    ready_.notify_all();
  }

  size_t depth() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return queue_.size();
  }

  const BatchOptions& options() const { return options_; }

 private:
  // Consecutive items at the front in the front item's group, at most max_batch.
  size_t front_group() const {
    size_t n = 0;
    while (n < queue_.size() && n < options_.max_batch && queue_[n].group == queue_.front().group) {
      ++n;
    }
    return n;
  }

  BatchOptions options_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<Item> queue_;
  bool stopped_ = false;
};

}  // namespace xmodal::serve
