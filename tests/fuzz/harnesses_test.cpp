// Replays every saved fuzz input (seed corpora and the inputs that once crashed) through the
// harnesses, in the normal build and under the sanitizers.
#include "harnesses.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <iterator>

#include "xmodal_test_paths.h"

namespace xmodal::fuzz {
namespace {

namespace fs = std::filesystem;

TEST(Fuzz, SavedInputsRunCleanThroughEveryHarness) {
  int replayed = 0;
  for (const char* kind : {"corpus", "regressions"}) {
    const fs::path root = fs::path(XMODAL_SOURCE_DIR) / "tests" / "fuzz" / kind;
    if (!fs::exists(root)) continue;
    for (const auto& dir : fs::directory_iterator(root)) {
      const Target* target = find_target(dir.path().filename().string());
      ASSERT_NE(target, nullptr) << "no harness for " << dir.path();
      for (const auto& file : fs::directory_iterator(dir.path())) {
        std::ifstream in(file.path(), std::ios::binary);
        const std::string input((std::istreambuf_iterator<char>(in)), {});
        SCOPED_TRACE(file.path().string());
        target->run(reinterpret_cast<const uint8_t*>(input.data()), input.size());
        ++replayed;
      }
    }
  }
  EXPECT_GE(replayed, 15);  // the seed corpora at least
}

}  // namespace
}  // namespace xmodal::fuzz
