#include "xmodal/train/optimizer.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <stdexcept>

#include "xmodal/core/strings.h"

namespace xmodal::train {
namespace {

std::string shape_text(const torch::Tensor& t) {
  std::string text = "[";
  for (int64_t i = 0; i < t.dim(); ++i) text += (i ? ", " : "") + std::to_string(t.size(i));
  return text + "]";
}

}  // namespace

bool decays(const std::string& name, const torch::Tensor& param) {
  if (param.dim() <= 1) return false;  // biases, LayerNorm weights and biases
  if (ends_with(name, ".bias")) return false;
  if (ends_with(name, "cls_token") || ends_with(name, "position_embedding")) return false;
  // nn::Embedding tables: BERT's word/position/token-type, the fusion's modality types.
  if (name.find("embeddings.") != std::string::npos) return false;
  if (name.find("type_embedding.") != std::string::npos) return false;
  return true;
}

std::string component_of(const std::string& name) {
  const std::string first = name.substr(0, name.find('.'));
  return first == "vision" || first == "text" || first == "fusion" ? first : "head";
}

std::vector<ParamGroup> make_param_groups(const torch::nn::Module& model, double weight_decay,
                                          const LrMults& mults) {
  const std::array<std::pair<const char*, double>, 4> components = {{{"vision", mults.vision},
                                                                     {"text", mults.text},
                                                                     {"fusion", mults.fusion},
                                                                     {"head", mults.head}}};
  std::vector<ParamGroup> all;  // component k: 2k decays, 2k + 1 does not
  for (const auto& [name, mult] : components) {
    all.push_back({name, mult, weight_decay, {}, {}});
    all.push_back({std::string(name) + "_no_decay", mult, 0.0, {}, {}});
  }
  for (const auto& item : model.named_parameters(/*recurse=*/true)) {
    const torch::Tensor& p = item.value();
    if (!p.requires_grad()) continue;
    const std::string component = component_of(item.key());
    size_t k = 0;
    while (components[k].first != component) ++k;
    ParamGroup& g = all[2 * k + (decays(item.key(), p) ? 0 : 1)];
    g.names.push_back(item.key());
    g.params.push_back(p);
  }
  std::vector<ParamGroup> groups;
  for (auto& g : all) {
    if (!g.params.empty()) groups.push_back(std::move(g));
  }
  return groups;
}

AdamW::AdamW(std::vector<ParamGroup> groups, AdamWOptions options)
    : groups_(std::move(groups)), options_(options) {
  for (const auto& g : groups_) {
    if (g.names.size() != g.params.size()) {
      throw std::invalid_argument("AdamW: group " + g.name +
                                  " has names and params of different "
                                  "lengths");
    }
    for (size_t i = 0; i < g.params.size(); ++i) {
      if (!slots_.emplace(g.names[i], Slot{}).second) {
        throw std::invalid_argument("AdamW: parameter " + g.names[i] + " is in two groups");
      }
    }
  }
}

void AdamW::step(double lr) {
  torch::NoGradGuard no_grad;
  const double b1 = options_.beta1;
  const double b2 = options_.beta2;
  for (const auto& g : groups_) {
    const double group_lr = lr * g.lr_mult;
    for (size_t i = 0; i < g.params.size(); ++i) {
      torch::Tensor p = g.params[i];
      const torch::Tensor& grad = p.grad();
      if (!grad.defined()) continue;
      Slot& s = slots_.at(g.names[i]);
      if (!s.exp_avg.defined()) {
        s.exp_avg = torch::zeros_like(p, torch::MemoryFormat::Preserve);
        s.exp_avg_sq = torch::zeros_like(p, torch::MemoryFormat::Preserve);
      }
      s.step += 1;
      // Same order of operations as torch.optim.AdamW (single-tensor path, PyTorch 1.13).
      if (g.weight_decay != 0.0) p.mul_(1.0 - group_lr * g.weight_decay);
      s.exp_avg.mul_(b1).add_(grad, 1.0 - b1);
      s.exp_avg_sq.mul_(b2).addcmul_(grad, grad, 1.0 - b2);
      const double bias1 = 1.0 - std::pow(b1, static_cast<double>(s.step));
      const double bias2 = 1.0 - std::pow(b2, static_cast<double>(s.step));
      const double step_size = group_lr / bias1;
      const torch::Tensor denom = (s.exp_avg_sq.sqrt() / std::sqrt(bias2)).add_(options_.eps);
      p.addcdiv_(s.exp_avg, denom, -step_size);
    }
  }
}

void AdamW::zero_grad() {
  for (const auto& g : groups_) {
    for (const auto& p : g.params) {
      if (p.grad().defined()) p.mutable_grad().reset();
    }
  }
}

std::vector<torch::Tensor> AdamW::parameters() const {
  std::vector<torch::Tensor> all;
  for (const auto& g : groups_) all.insert(all.end(), g.params.begin(), g.params.end());
  return all;
}

std::map<std::string, torch::Tensor> AdamW::state() const {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, s] : slots_) {
    if (!s.exp_avg.defined()) continue;
    out["exp_avg/" + name] = s.exp_avg;
    out["exp_avg_sq/" + name] = s.exp_avg_sq;
    out["step/" + name] = torch::tensor(s.step, torch::kInt64);
  }
  return out;
}

void AdamW::load_state(const std::map<std::string, torch::Tensor>& state) {
  std::map<std::string, const torch::Tensor*> params;
  for (const auto& g : groups_) {
    for (size_t i = 0; i < g.params.size(); ++i) params[g.names[i]] = &g.params[i];
  }
  std::map<std::string, Slot> loaded;
  for (const auto& [key, value] : state) {
    const auto slash = key.find('/');
    const std::string kind = slash == std::string::npos ? "" : key.substr(0, slash);
    const std::string name = slash == std::string::npos ? key : key.substr(slash + 1);
    const auto it = params.find(name);
    if (it == params.end() || (kind != "exp_avg" && kind != "exp_avg_sq" && kind != "step")) {
      throw std::runtime_error("optimizer state: unexpected entry " + key);
    }
    Slot& s = loaded[name];
    if (kind == "step") {
      if (value.numel() != 1) throw std::runtime_error("optimizer state: " + key + " not a scalar");
      s.step = value.to(torch::kInt64).item<int64_t>();
      continue;
    }
    const torch::Tensor& p = *it->second;
    if (value.sizes() != p.sizes()) {
      throw std::runtime_error("optimizer state: " + key + " has shape " + shape_text(value) +
                               ", the parameter " + shape_text(p));
    }
    (kind == "exp_avg" ? s.exp_avg : s.exp_avg_sq) =
        value.to(p.device(), p.scalar_type()).contiguous().clone();
  }
  for (const auto& [name, s] : loaded) {
    if (!s.exp_avg.defined() || !s.exp_avg_sq.defined() || s.step <= 0) {
      throw std::runtime_error("optimizer state: incomplete entries for " + name);
    }
  }
  for (auto& [name, slot] : slots_) {
    const auto it = loaded.find(name);
    slot = it == loaded.end() ? Slot{} : it->second;
  }
}

double clip_grad_norm(const std::vector<torch::Tensor>& params, double max_norm) {
  torch::NoGradGuard no_grad;
  std::vector<torch::Tensor> norms;
  for (const auto& p : params) {
    if (p.grad().defined()) norms.push_back(p.grad().norm(2).to(torch::kFloat64));
  }
  if (norms.empty()) return 0.0;
  const double total = torch::stack(norms).norm(2).item<double>();
  if (max_norm > 0.0 && std::isfinite(total)) {
    const double coef = max_norm / (total + 1e-6);
    if (coef < 1.0) {
      for (const auto& p : params) {
        if (p.grad().defined()) p.grad().mul_(coef);
      }
    }
  }
  return total;
}

int64_t LrSchedule::warmup_from(double warmup, int64_t total_steps) {
  if (warmup <= 0.0) return 0;
  if (warmup < 1.0) {
    return static_cast<int64_t>(std::ceil(warmup * static_cast<double>(total_steps) - 1e-9));
  }
  return static_cast<int64_t>(std::llround(warmup));
}

double LrSchedule::factor(int64_t step) const {
  step = std::clamp<int64_t>(step, 1, std::max<int64_t>(total_steps, 1));
  if (step <= warmup_steps) {
    return static_cast<double>(step) / static_cast<double>(warmup_steps);
  }
  if (kind == config::Schedule::constant) return 1.0;
  const double span = static_cast<double>(std::max<int64_t>(total_steps - warmup_steps, 1));
  const double p = std::clamp(static_cast<double>(step - warmup_steps) / span, 0.0, 1.0);
  if (kind == config::Schedule::linear) return 1.0 - p;
  return 0.5 * (1.0 + std::cos(M_PI * p));
}

}  // namespace xmodal::train
