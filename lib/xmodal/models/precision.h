// The precision a model computes in: fp32, or bf16 / fp16 through LibTorch's autocast around
// the forward pass (matrix products in the low-precision type, reductions and losses in fp32).
// train.precision is the trainer's (train_step.cpp); eval.precision the inference commands'
// (infer::Session sets ModelImpl::precision).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include <string>

#include "xmodal/config/config.h"

namespace xmodal::models {

/// Throws std::invalid_argument, naming `key`, for a precision the device cannot compute in
/// usefully: bf16 on a CPU without AVX512-BF16 or AMX (its bf16 products would be slower than
/// fp32's). validate() cannot see this when run.device is auto.
void check_precision(config::Precision precision, const c10::Device& device,
                     const std::string& key = "train.precision");

/// The type a precision computes its products in: kFloat (fp32), kBFloat16, kHalf.
c10::ScalarType compute_dtype(config::Precision precision);

/// Autocast for a scope (nothing for fp32).
class AutocastGuard {
 public:
  /// keep_cast_cache: leave autocast's low-precision copies of the weights cached when the
  /// outermost guard ends (inference, whose weights do not change: each forward would cast
  /// every weight again); training clears them, as its weights change every step.
  AutocastGuard(config::Precision precision, const c10::Device& device,
                bool keep_cast_cache = false);
  /// The same for a compute type (kFloat: nothing).
  AutocastGuard(c10::ScalarType dtype, const c10::Device& device, bool keep_cast_cache = false);
  /// Leaves autocast (before backward).
  void reset();
  ~AutocastGuard() { reset(); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false, was_enabled_ = false, keep_cast_cache_ = false;
  c10::DeviceType device_type_ = c10::kCPU;
  c10::ScalarType was_dtype_ = c10::kFloat;
};

}  // namespace xmodal::models
