// train.precision: fp32, or bf16 / fp16 through LibTorch's autocast around the forward pass
// (matrix products in the low-precision type, reductions and losses in fp32).
#pragma once

#include <c10/core/Device.h>
#include <c10/core/ScalarType.h>

#include "xmodal/config/config.h"

namespace xmodal::train {

/// Throws std::invalid_argument for a precision the resolved device cannot train in (bf16 on the
/// CPU, which validate() cannot see when run.device is auto).
void check_precision(config::Precision precision, const c10::Device& device);

/// Autocast for a scope (nothing for fp32).
class AutocastGuard {
 public:
  AutocastGuard(config::Precision precision, const c10::Device& device);
  /// Leaves autocast (before backward).
  void reset();
  ~AutocastGuard() { reset(); }
  AutocastGuard(const AutocastGuard&) = delete;
  AutocastGuard& operator=(const AutocastGuard&) = delete;

 private:
  bool active_ = false, was_enabled_ = false;
  c10::DeviceType device_type_ = c10::kCPU;
  c10::ScalarType was_dtype_ = c10::kFloat;
};

}  // namespace xmodal::train
