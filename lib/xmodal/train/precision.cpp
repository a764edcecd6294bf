#include "xmodal/train/precision.h"

#include <ATen/autocast_mode.h>

#include <stdexcept>

namespace xmodal::train {

void check_precision(config::Precision precision, const c10::Device& device) {
  if (precision != config::Precision::bf16 || device.is_cuda()) return;
  // LibTorch 1.13's CPU autocast fails in this model's backward bookkeeping ("expected scalar
  // type BFloat16 but found Float" saving index_select's input). A bf16 path of xmodal's own
  // was measured instead (2026-12-01, AMD EPYC Zen 4 with avx512_bf16, 2 threads): the
  // transformer blocks' Linear products in bf16 through oneDNN (fp32 master weights, bias
  // and everything else fp32). bf16 products ran at ~410-430 GFLOP/s against ~200-230 for
  // fp32, the quickstart trained at 333 samples/s against 303 (+10%), but validation
  // accuracy fell from 73.93% to 72.90% and test from 73.77% to 72.57%: more than the 0.5
  // points allowed, so it is refused (docs/learning.md section 17). run.device cpu is refused by
  // validate(); this is run.device auto on a machine without CUDA.
  throw std::invalid_argument(
      "train.precision bf16 is not supported on the CPU yet (LibTorch 1.13's CPU autocast "
      "fails in this model's backward); use fp32");
}

AutocastGuard::AutocastGuard(config::Precision precision, const c10::Device& device) {
  if (precision == config::Precision::fp32) return;
  const auto dtype = precision == config::Precision::bf16 ? at::kBFloat16 : at::kHalf;
  device_type_ = device.is_cuda() ? at::kCUDA : at::kCPU;
  was_enabled_ = at::autocast::is_autocast_enabled(device_type_);
  was_dtype_ = at::autocast::get_autocast_dtype(device_type_);
  at::autocast::set_autocast_dtype(device_type_, dtype);
  at::autocast::set_autocast_enabled(device_type_, true);
  at::autocast::increment_nesting();
  active_ = true;
}

void AutocastGuard::reset() {
  if (!active_) return;
  if (at::autocast::decrement_nesting() == 0) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_type_, was_enabled_);
  at::autocast::set_autocast_dtype(device_type_, was_dtype_);
  active_ = false;
}

}  // namespace xmodal::train
