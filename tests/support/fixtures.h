// Helpers for tests that compare against committed reference fixtures.
#pragma once

#include <torch/torch.h>

// SentencePiece lives in a plugin loaded with RTLD_DEEPBIND, which AddressSanitizer refuses:
// its tests are skipped in a sanitizer build (scripts/sanitize.sh).
#if defined(XMODAL_ASAN)
#define XMODAL_SKIP_WITHOUT_SENTENCEPIECE() \
  GTEST_SKIP() << "SentencePiece is unavailable under AddressSanitizer (RTLD_DEEPBIND)"
#else
#define XMODAL_SKIP_WITHOUT_SENTENCEPIECE() static_cast<void>(0)
#endif

#include <functional>
#include <map>
#include <stdexcept>
#include <string>

#include "xmodal/io/safetensors.h"
#include "xmodal_test_paths.h"

namespace xmodal::testing {

/// The message of the std::runtime_error `f` throws, or "" when it throws none.
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const std::runtime_error& e) {
    return e.what();
  }
  return "";
}

/// All tensors of tests/data/<relative>.
inline std::map<std::string, torch::Tensor> load_fixture(const std::string& relative) {
  return io::load_safetensors(std::string(XMODAL_TEST_DATA) + "/" + relative);
}

/// The entries whose name starts with `prefix`, with the prefix removed.
inline std::map<std::string, torch::Tensor> with_prefix(
    const std::map<std::string, torch::Tensor>& tensors, const std::string& prefix) {
  std::map<std::string, torch::Tensor> out;
  for (const auto& [name, t] : tensors) {
    if (name.rfind(prefix, 0) == 0) out[name.substr(prefix.size())] = t;
  }
  return out;
}

/// Largest absolute difference of two tensors of the same shape.
inline double max_abs_diff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.to(torch::kFloat64) - b.to(torch::kFloat64)).abs().max().item<double>();
}

/// Names of the parameters that received no gradient (or a zero one) after backward().
inline std::vector<std::string> params_without_grad(const torch::nn::Module& module) {
  std::vector<std::string> missing;
  for (const auto& p : module.named_parameters()) {
    if (!p.value().grad().defined() || p.value().grad().abs().sum().item<double>() == 0.0) {
      missing.push_back(p.key());
    }
  }
  return missing;
}

/// Parameter names in registration order.
inline std::vector<std::string> param_names(const torch::nn::Module& module) {
  std::vector<std::string> names;
  for (const auto& p : module.named_parameters()) names.push_back(p.key());
  return names;
}

}  // namespace xmodal::testing
