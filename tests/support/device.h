// The device the device-agnostic tests run on: XMODAL_TEST_DEVICE ("cpu" when unset), so that one
// command runs them on a GPU (scripts/device_check.sh: XMODAL_TEST_DEVICE=cuda xmodal_tests
// --gtest_filter='Device*'). Their suites are named Device*; on the CPU they still run, comparing
// the CPU with itself through the same code.
#pragma once

#include <torch/torch.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

namespace xmodal::testing {

inline std::string test_device_name() {
  const char* name = std::getenv("XMODAL_TEST_DEVICE");
  return name && *name ? name : "cpu";
}

/// The device under test. Asking for CUDA where there is none is an error, not a skip: the
/// command that asked expects a GPU.
inline torch::Device test_device() {
  const torch::Device device(test_device_name());
  if (device.is_cuda() && !torch::cuda::is_available()) {
    throw std::runtime_error("XMODAL_TEST_DEVICE=" + test_device_name() +
                             ", but this process sees no CUDA device");
  }
  return device;
}

}  // namespace xmodal::testing
