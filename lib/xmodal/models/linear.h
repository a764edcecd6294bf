// The Linear layer of every xmodal model: torch::nn::Linear (the same parameters, names,
// initialisation and float arithmetic) with an optional int8 form for inference.
//
// int8 (`--quantize int8`, `xmodal quantize`): dynamic quantization as PyTorch's
// torch.ao.quantization.quantize_dynamic does it. The weight is stored as int8 with one scale
// per output row (symmetric, zero point 0: scale = max |w| of the row / 127); each input is
// quantized on the fly to uint8 over its own min/max; the product runs on LibTorch's quantized
// engine (`quantized::linear_prepack` / `apply_dynamic`; X86 = FBGEMM for these products where
// LibTorch has it, else ONEDNN; XMODAL_INT8_ENGINE=x86|fbgemm|onednn picks one) and comes back
// as float. The inputs use 8 bits on CPUs with VNNI and 7 bits (reduce_range) elsewhere: without
// VNNI the u8 x s8 products are added in 16 bits and saturate (measured on an AMD EPYC with AVX2
// and oneDNN 2.6: errors of 0.36 instead of 0.04 on a 128-wide product). The first quantization
// in a process checks the engine against the float product (check_int8_engine).
//
// Gradients (xmodal explain on an int8 model) pass through as if the activations were not
// rounded: d input = d output x dequantized weight.
#pragma once

#include <ATen/native/quantized/PackedParams.h>
#include <torch/nn.h>

#include <map>
#include <string>

namespace xmodal::models {

class LinearImpl : public torch::nn::LinearImpl {
 public:
  using torch::nn::LinearImpl::LinearImpl;

  /// input [..., in] -> [..., out]: the float product, or the int8 one once quantized.
  torch::Tensor forward(const torch::Tensor& input);

  /// Quantizes the float weight as described above; the float weight is released (an empty
  /// tensor stays registered under its name).
  void quantize_int8();
  /// The int8 form from stored tensors (a quantized checkpoint): int8 [out, in], scale f32
  /// [out]; the float weight is released as by quantize_int8().
  void load_int8(const torch::Tensor& int8_weight, const torch::Tensor& scale);

  bool is_int8() const { return int8_weight_.defined(); }
  const torch::Tensor& int8_weight() const { return int8_weight_; }  ///< int8 [out, in]
  const torch::Tensor& int8_scale() const { return int8_scale_; }    ///< f32 [out]
  /// The weight the int8 product multiplies by: int8 x scale, [out, in] float.
  torch::Tensor dequantized_weight() const;

 private:
  torch::Tensor int8_weight_, int8_scale_;
  c10::intrusive_ptr<LinearPackedParamsBase> packed_;
};
TORCH_MODULE(Linear);

/// The suffix of a quantized layer's scale tensor in a quantized checkpoint: LAYER.weight holds
/// the int8 weight, LAYER.weight_scale its per-row scales.
inline constexpr const char* kInt8ScaleSuffix = ".weight_scale";

/// Quantizes every Linear of `module` (int8 as above). Returns the number of layers quantized.
/// Throws std::runtime_error when LibTorch has no quantized engine or it fails its check.
int quantize_int8(torch::nn::Module& module);

/// Whether any Linear of `module` is int8.
bool has_int8(const torch::nn::Module& module);

/// Every tensor of `module` as a quantized checkpoint stores it: an int8 Linear's weight as its
/// int8 tensor plus LAYER.weight_scale; everything else as state_tensors() gives it.
std::map<std::string, torch::Tensor> int8_state_tensors(const torch::nn::Module& module);

/// Gives the int8 Linears of `module` named in `tensors` (LAYER.weight int8 with a
/// LAYER.weight_scale) their int8 form and removes those entries from `tensors`, leaving what
/// load_state() reads. `source` names the file in errors.
void load_int8_layers(torch::nn::Module& module, std::map<std::string, torch::Tensor>& tensors,
                      const std::string& source);

/// The engine and input width int8 products use, e.g. "X86 engine, 8-bit inputs (VNNI)".
std::string int8_engine_summary();

/// Checks the engine's int8 product against the float one on a product whose rows reach
/// +-127, to the rounding bound of the two quantizations; throws std::runtime_error with the
/// measured error when it fails. Run once per process by quantize_int8() and load_int8_layers().
void check_int8_engine();

}  // namespace xmodal::models
