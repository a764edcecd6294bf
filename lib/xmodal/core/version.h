#pragma once

#include <string>

namespace xmodal {

/// xmodal's version ("0.1.0"), from project(VERSION) in CMakeLists.txt.
std::string version();

}  // namespace xmodal
