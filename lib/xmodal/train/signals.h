// SIGINT / SIGTERM during training: the step in flight finishes, a checkpoint is written and the
// run returns interrupted; a second signal stops the process at once (the default action).
#pragma once

#include <memory>

namespace xmodal::train {

/// Catches SIGINT and SIGTERM for its lifetime (restoring the previous handlers after).
class StopSignals {
 public:
  /// enabled false installs nothing (pending() stays 0).
  explicit StopSignals(bool enabled);
  ~StopSignals();
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;

  /// The signal received since construction, 0 if none.
  static int pending();

 private:
  struct Saved;
  bool enabled_;
  std::unique_ptr<Saved> saved_;
};

}  // namespace xmodal::train
