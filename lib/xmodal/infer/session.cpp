#include "xmodal/infer/session.h"

#include <stdexcept>

#include "xmodal/config/loader.h"
#include "xmodal/core/logging.h"
#include "xmodal/core/runtime.h"
#include "xmodal/models/precision.h"

namespace xmodal::infer {

Session Session::open(const SessionOptions& o) {
  if (o.checkpoint.empty()) {
    throw std::invalid_argument(o.purpose + ": no checkpoint given");
  }
  Session s;
  checkpoint::LoadedModel& m = s.loaded;
  m = checkpoint::load_trained_model(o.checkpoint);
  if (o.check) o.check(m);
  config::apply_overrides(m.config, o.overrides);
  config::validate(m.config);
  configure_threads(m.config.run.threads);
  s.device = o.device ? *o.device : resolve_device(m.config.run.device);
  // Before the move: quantize_model refuses an int8 model off the CPU before it gets there.
  checkpoint::quantize_model(m, o.quantize.value_or(m.config.eval.quantize), s.device);
  s.precision = m.config.eval.precision;
  models::check_precision(s.precision, s.device, "eval.precision");
  m.model->to(s.device);
  m.model->eval();
  m.model->compute_dtype = models::compute_dtype(s.precision);
  log::debug("[{}] {} (step {}) on {}, {}, {}", o.purpose, m.checkpoint, m.step, s.device.str(),
             config::to_string(m.quantization), config::to_string(s.precision));
  return s;
}

}  // namespace xmodal::infer
