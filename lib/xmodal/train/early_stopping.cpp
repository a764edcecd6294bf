#include "xmodal/train/early_stopping.h"

#include <cmath>

namespace xmodal::train {

EarlyStopping::EarlyStopping(config::MetricMode mode, int64_t patience, double min_delta)
    : mode_(mode), patience_(patience), min_delta_(min_delta) {}

bool EarlyStopping::update(EarlyStoppingState& state, double value, int64_t step) const {
  bool improved = false;
  if (std::isfinite(value)) {
    if (!state.best) {
      improved = true;
    } else if (mode_ == config::MetricMode::max) {
      improved = value > *state.best + min_delta_;
    } else {
      improved = value < *state.best - min_delta_;
    }
  }
  if (improved) {
    state.best = value;
    state.best_step = step;
    state.bad_evals = 0;
  } else {
    state.bad_evals += 1;
    if (patience_ > 0 && state.bad_evals >= patience_) state.stopped = true;
  }
  return improved;
}

}  // namespace xmodal::train
