// Fuzz harnesses: each feeds arbitrary bytes to one parser of untrusted input and returns
// normally when the parser either accepts them or throws its documented exception (a clear
// error). A crash, a sanitizer report, a leak or a hang is a bug.
//
// libFuzzer drives them through fuzz_main.cpp (scripts/fuzz.sh, a clang build with
// -DXMODAL_FUZZ=ON); the unit tests replay every saved input in tests/fuzz/corpus/*/ and
// tests/fuzz/regressions/*/ through the same functions (tests/fuzz/harnesses_test.cpp).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace xmodal::fuzz {

using Harness = void (*)(const uint8_t* data, size_t size);

struct Target {
  const char* name;
  Harness run;
};

/// Every target: config, vqa, coco, safetensors, idx, wordpiece, word_tokenizer, image,
/// torch_pickle, checkpoint.
const std::vector<Target>& targets();

/// The target named `name`, or nullptr.
const Target* find_target(const std::string& name);

}  // namespace xmodal::fuzz
