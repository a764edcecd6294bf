// Precompiled header for every xmodal target (see lib/CMakeLists.txt). Heavy, stable headers only.
#pragma once

#include <torch/torch.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>
