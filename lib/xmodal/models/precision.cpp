#include "xmodal/models/precision.h"

#include <ATen/autocast_mode.h>

#include <stdexcept>
#include <string>

#include "xmodal/core/cpu.h"

namespace xmodal::models {

void check_precision(config::Precision precision, const c10::Device& device,
                     const std::string& key) {
  if (precision != config::Precision::bf16 || device.is_cuda()) return;
  // On the CPU, bf16 pays only where the products run in bf16 natively (AVX512-BF16: AMD Zen 4
  // and 5, Intel Cooper Lake; AMX: Intel Sapphire Rapids and later); elsewhere oneDNN converts
  // every operand and the products run slower than in fp32.
  const auto& cpu = cpu_info();
  if (cpu.has("avx512_bf16") || cpu.has("amx_bf16")) return;
  throw std::invalid_argument(key + " bf16 on the CPU needs AVX512-BF16 or AMX, which this CPU (" +
                              (cpu.model_name.empty() ? std::string("unknown") : cpu.model_name) +
                              ") lacks: its bf16 products would run slower than fp32; use fp32");
}

c10::ScalarType compute_dtype(config::Precision precision) {
  switch (precision) {
    case config::Precision::bf16:
      return at::kBFloat16;
    case config::Precision::fp16:
      return at::kHalf;
    default:
      return at::kFloat;
  }
}

AutocastGuard::AutocastGuard(config::Precision precision, const c10::Device& device,
                             bool keep_cast_cache)
    : AutocastGuard(compute_dtype(precision), device, keep_cast_cache) {}

AutocastGuard::AutocastGuard(c10::ScalarType dtype, const c10::Device& device, bool keep_cast_cache)
    : keep_cast_cache_(keep_cast_cache) {
  if (dtype == at::kFloat) return;
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
  if (at::autocast::decrement_nesting() == 0 && !keep_cast_cache_) at::autocast::clear_cache();
  at::autocast::set_autocast_enabled(device_type_, was_enabled_);
  at::autocast::set_autocast_dtype(device_type_, was_dtype_);
  active_ = false;
}

}  // namespace xmodal::models
