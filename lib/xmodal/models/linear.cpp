#include "xmodal/models/linear.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/torch.h>

#include <algorithm>
#include <cstdlib>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include "xmodal/core/cpu.h"
#include "xmodal/core/error.h"

namespace xmodal::models {
namespace {

// The quantized engine of the process and whether its dynamic products read their inputs in
// 7 bits (reduce_range), chosen once (nothing else in xmodal uses a quantized engine):
// - X86 (LibTorch 2.x: FBGEMM for Linear, oneDNN for the rest), else FBGEMM, else ONEDNN;
//   XMODAL_INT8_ENGINE=x86|fbgemm|onednn picks one (for comparisons);
// - 8-bit inputs on CPUs with VNNI (vpdpbusd adds u8 x s8 products in 32 bits), 7-bit ones
//   elsewhere: AVX2's vpmaddubsw adds pairs of them in 16 bits and saturates (measured on an
//   AMD EPYC with AVX2 and oneDNN 2.6: errors of 0.36 instead of 0.04 on a 128-wide product).
// check_int8_engine() then verifies the choice against the float product.
struct Engine {
  at::QEngine engine = at::QEngine::ONEDNN;
  bool reduce_range = true;
};

const Engine& int8_engine() {
  static const Engine chosen = [] {
    const auto& engines = at::globalContext().supportedQEngines();
    auto supported = [&](at::QEngine e) {
      return std::find(engines.begin(), engines.end(), e) != engines.end();
    };
    Engine e;
    const char* env = std::getenv("XMODAL_INT8_ENGINE");
    const std::string asked = env ? env : "";
    const std::vector<std::pair<std::string, at::QEngine>> order = {
        {"x86", at::QEngine::X86},
        {"fbgemm", at::QEngine::FBGEMM},
        {"onednn", at::QEngine::ONEDNN}};
    bool found = false;
    for (const auto& [name, engine] : order) {
      if ((asked.empty() || asked == name) && supported(engine)) {
        e.engine = engine;
        found = true;
        break;
      }
    }
    if (!found) {
      throw std::runtime_error(
          asked.empty() ? "int8: this LibTorch has no x86, FBGEMM or ONEDNN quantized engine"
                        : "int8: XMODAL_INT8_ENGINE=" + asked +
                              " is not an engine of this LibTorch (x86, fbgemm or onednn)");
    }
    const auto& cpu = cpu_info();
    e.reduce_range = !(cpu.has("avx512_vnni") || cpu.has("avx_vnni") || cpu.has("amx_int8"));
    return e;
  }();
  return chosen;
}

void use_int8_engine() {
  auto& ctx = at::globalContext();
  const auto engine = int8_engine().engine;
  if (ctx.qEngine() != engine) ctx.setQEngine(engine);
}

std::mutex& pack_mutex() {
  static std::mutex m;
  return m;
}

c10::intrusive_ptr<LinearPackedParamsBase> pack(const torch::Tensor& int8_weight,
                                                const torch::Tensor& scale,
                                                const torch::Tensor& bias) {
  use_int8_engine();
  const auto q = at::_make_per_channel_quantized_tensor(
      int8_weight.contiguous(), scale.to(torch::kFloat64),
      torch::zeros({scale.size(0)}, torch::kLong), /*axis=*/0);
  static const auto op = c10::Dispatcher::singleton()
                             .findSchemaOrThrow("quantized::linear_prepack", "")
                             .typed<c10::intrusive_ptr<LinearPackedParamsBase>(
                                 at::Tensor, c10::optional<at::Tensor>)>();
  return op.call(
      q, bias.defined() ? c10::optional<at::Tensor>(bias.detach().contiguous()) : c10::nullopt);
}

// The int8 product with a straight-through gradient for the input (explain on an int8 model).
class Int8LinearFunction : public torch::autograd::Function<Int8LinearFunction> {
 public:
  static torch::Tensor forward(torch::autograd::AutogradContext* ctx, const torch::Tensor& input,
                               const torch::Tensor& dequantized, LinearPackedParamsBase* packed) {
    ctx->save_for_backward({dequantized});
    return packed->apply_dynamic(input, int8_engine().reduce_range);
  }
  static torch::autograd::variable_list backward(torch::autograd::AutogradContext* ctx,
                                                 torch::autograd::variable_list grad) {
    const auto weight = ctx->get_saved_variables()[0];
    return {grad[0].matmul(weight), torch::Tensor(), torch::Tensor()};
  }
};

// Symmetric per-row int8 of a float weight [out, in]: (int8, scale [out]).
std::pair<torch::Tensor, torch::Tensor> quantize_rows(const torch::Tensor& weight) {
  const auto w = weight.detach().to(torch::kFloat32).contiguous();
  auto scale = w.abs().amax(1) / 127.0;
  scale = torch::where(scale > 0, scale, torch::ones_like(scale));  // an all-zero row
  const auto q = (w / scale.unsqueeze(1)).round().clamp(-127, 127).to(torch::kInt8);
  return {q, scale};
}

void release_float_weight(torch::Tensor& weight) {
  torch::NoGradGuard no_grad;
  weight.set_data(torch::empty({0}, weight.options()));
}

}  // namespace

torch::Tensor LinearImpl::forward(const torch::Tensor& input) {
  if (!is_int8()) return torch::nn::LinearImpl::forward(input);
  TORCH_CHECK(input.device().is_cpu(), "int8 Linear runs on the CPU only");
  TORCH_CHECK(input.size(-1) == options.in_features(), "Linear: expected input [..., ",
              options.in_features(), "], got ", input.sizes());
  {
    std::lock_guard<std::mutex> lock(pack_mutex());
    if (!packed_) packed_ = pack(int8_weight_, int8_scale_, bias);
  }
  auto shape = input.sizes().vec();
  shape.back() = options.out_features();
  const auto rows = input.reshape({-1, options.in_features()}).to(torch::kFloat32).contiguous();
  if (rows.size(0) == 0) return torch::zeros(shape, input.options().dtype(torch::kFloat32));
  torch::Tensor out;
  if (torch::GradMode::is_enabled() && input.requires_grad()) {
    out = Int8LinearFunction::apply(rows, dequantized_weight(), packed_.get());
  } else {
    out = packed_->apply_dynamic(rows, int8_engine().reduce_range);
  }
  return out.view(shape);
}

void LinearImpl::quantize_int8() {
  if (is_int8()) return;
  const auto [q, scale] = quantize_rows(weight);
  load_int8(q, scale);
}

void LinearImpl::load_int8(const torch::Tensor& int8_weight, const torch::Tensor& scale) {
  const int64_t out = options.out_features(), in = options.in_features();
  if (int8_weight.scalar_type() != torch::kInt8 ||
      int8_weight.sizes() != torch::IntArrayRef{out, in}) {
    throw std::runtime_error("int8 weight must be int8 [" + std::to_string(out) + ", " +
                             std::to_string(in) + "], got " +
                             std::string(c10::toString(int8_weight.scalar_type())) + " " +
                             c10::str(int8_weight.sizes()));
  }
  if (scale.dim() != 1 || scale.size(0) != out || !scale.is_floating_point()) {
    throw std::runtime_error("int8 weight scale must be float [" + std::to_string(out) + "], got " +
                             c10::str(scale.sizes()));
  }
  const auto s = scale.to(torch::kFloat32).contiguous();
  if (!torch::isfinite(s).all().item<bool>() || !(s > 0).all().item<bool>()) {
    throw std::runtime_error("int8 weight scales must be finite and positive");
  }
  check_int8_engine();
  int8_weight_ = int8_weight.contiguous();
  int8_scale_ = s;
  packed_.reset();  // packed at the first forward, with the bias as it is then
  release_float_weight(weight);
}

torch::Tensor LinearImpl::dequantized_weight() const {
  TORCH_CHECK(is_int8(), "dequantized_weight: the layer is not int8");
  return int8_weight_.to(torch::kFloat32) * int8_scale_.unsqueeze(1);
}

int quantize_int8(torch::nn::Module& module) {
  int n = 0;
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (auto* linear = m->as<LinearImpl>()) {
      linear->quantize_int8();
      ++n;
    }
  }
  return n;
}

bool has_int8(const torch::nn::Module& module) {
  for (const auto& m : module.modules(/*include_self=*/true)) {
    if (const auto* linear = m->as<LinearImpl>(); linear && linear->is_int8()) return true;
  }
  return false;
}

std::map<std::string, torch::Tensor> int8_state_tensors(const torch::nn::Module& module) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& p : module.named_parameters(true)) out[p.key()] = p.value().detach();
  for (const auto& b : module.named_buffers(true)) out[b.key()] = b.value().detach();
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    const auto* linear = item.value()->as<LinearImpl>();
    if (!linear || !linear->is_int8()) continue;
    out[item.key() + ".weight"] = linear->int8_weight();
    out[item.key() + kInt8ScaleSuffix] = linear->int8_scale();
  }
  return out;
}

void load_int8_layers(torch::nn::Module& module, std::map<std::string, torch::Tensor>& tensors,
                      const std::string& source) {
  for (const auto& item : module.named_modules("", /*include_self=*/false)) {
    auto* linear = item.value()->as<LinearImpl>();
    if (!linear) continue;
    const auto scale = tensors.find(item.key() + kInt8ScaleSuffix);
    if (scale == tensors.end()) continue;
    const auto weight = tensors.find(item.key() + ".weight");
    if (weight == tensors.end()) {
      throw std::runtime_error(source + ": " + scale->first + " without " + item.key() + ".weight");
    }
    try {
      linear->load_int8(weight->second, scale->second);
    } catch (const std::runtime_error&) {
      rethrow_in(source + ": " + item.key() + ": ");
    }
    weight->second = torch::empty({0});  // what the released float weight now holds
    tensors.erase(scale);
  }
}

std::string int8_engine_summary() {
  const auto& e = int8_engine();
  return std::string(c10::toString(e.engine)) + " engine, " +
         (e.reduce_range ? "7-bit inputs (no VNNI)" : "8-bit inputs (VNNI)");
}

void check_int8_engine() {
  static std::once_flag once;
  static std::string failure;
  std::call_once(once, [] {
    try {
      use_int8_engine();
      const bool reduce = int8_engine().reduce_range;
      torch::NoGradGuard no_grad;
      auto gen = at::detail::createCPUGenerator(20261202);
      const int64_t rows = 64, in = 128, out = 96;
      // Rows of the weight reach +-127 and the inputs span [-1, 3]: where u8 x s8 products
      // saturate, this fails.
      const auto w = at::randn({out, in}, gen) * 0.05;
      const auto x = at::rand({rows, in}, gen) * 4.0 - 1.0;
      const auto b = at::randn({out}, gen) * 0.1;
      const auto [q, scale] = quantize_rows(w);
      const auto packed = pack(q, scale, b);
      const auto y = packed->apply_dynamic(x, reduce);
      const auto wq = q.to(torch::kFloat32) * scale.unsqueeze(1);
      const auto ref = torch::addmm(b, x, wq.t());
      // The inputs' rounding: at most half a step (7 bits: 127 steps, 8 bits: 255) over
      // [min(x, 0), max(x, 0)] each.
      const double step =
          (std::max(x.max().item<double>(), 0.0) - std::min(x.min().item<double>(), 0.0)) /
          (reduce ? 127.0 : 255.0);
      const auto bound = wq.abs().sum(1) * (0.5 * step) * 1.01 + 1e-4;  // [out]
      const auto err = (y - ref).abs();
      const auto worst = (err - bound.unsqueeze(0)).max().item<double>();
      if (worst > 0) {
        failure = "the int8 product (" + int8_engine_summary() +
                  ") differs from the float one by up to " +
                  std::to_string(err.max().item<double>()) + " (bound " +
                  std::to_string(bound.max().item<double>()) + ")";
      }
    } catch (const std::exception& e) {
      failure = e.what();
    }
  });
  if (!failure.empty()) throw std::runtime_error("int8 unavailable: " + failure);
}

}  // namespace xmodal::models
