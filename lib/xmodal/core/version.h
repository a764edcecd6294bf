#pragma once

#include <string>

namespace xmodal {

/// xmodal's version ("0.1.0"), from project(VERSION) in CMakeLists.txt.
std::string version();

/// Built against a CUDA LibTorch (XMODAL_CUDA, scripts/build_cuda.sh): libtorch_cuda is linked.
bool built_with_cuda();

}  // namespace xmodal
