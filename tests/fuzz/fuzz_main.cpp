// libFuzzer entry point: one binary per target, named by XMODAL_FUZZ_TARGET at compile time.
#include <cstdio>
#include <cstdlib>

#include "harnesses.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const xmodal::fuzz::Target* target = [] {
    const auto* t = xmodal::fuzz::find_target(XMODAL_FUZZ_TARGET);
    if (t == nullptr) {
      std::fprintf(stderr, "unknown fuzz target %s\n", XMODAL_FUZZ_TARGET);
      std::abort();
    }
    return t;
  }();
  target->run(data, size);
  return 0;
}
