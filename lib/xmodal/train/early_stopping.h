// Early stopping on a validation metric; its state is part of a checkpoint
// (checkpoint::EarlyStoppingState), so a resumed run stops where the uninterrupted one would.
#pragma once

#include <cstdint>

#include "xmodal/checkpoint/checkpoint.h"
#include "xmodal/config/config.h"

namespace xmodal::train {

using checkpoint::EarlyStoppingState;

/// Early stopping on a validation metric: an evaluation improves when it beats the best by more
/// than min_delta (in the direction of `mode`); the run stops after `patience` evaluations in a
/// row that did not improve (patience 0 = never). The rule is this object; what it has seen is
/// an EarlyStoppingState, which lives in the run's checkpointed TrainState.
class EarlyStopping {
 public:
  EarlyStopping(config::MetricMode mode, int64_t patience, double min_delta);
  /// Records one evaluation in `state` (stopped set once patience runs out); returns whether it
  /// improved on the best.
  bool update(EarlyStoppingState& state, double value, int64_t step) const;

 private:
  config::MetricMode mode_;
  int64_t patience_;
  double min_delta_;
};

}  // namespace xmodal::train
