#include "xmodal/core/cpu.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "xmodal/core/strings.h"

namespace xmodal {
namespace {

// The first "flags" and "model name" lines of /proc/cpuinfo: the kernel's own reading of
// cpuid, with the extensions the OS does not enable already removed.
std::set<std::string> proc_flags(std::string* model_name) {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "model name" && model_name->empty()) *model_name = trim(line.substr(colon + 1));
    if (key == "flags" && flags.empty()) {
      std::istringstream words(line.substr(colon + 1));
      std::string word;
      while (words >> word) flags.insert(word == "pni" ? "sse3" : word);
    }
  }
  return flags;
}

TEST(Cpu, FeaturesAgreeWithProcCpuinfo) {
  std::string model_name;
  const auto flags = proc_flags(&model_name);
  const CpuInfo& cpu = cpu_info();
  if (flags.empty() || cpu.vendor.empty()) GTEST_SKIP() << "no x86 /proc/cpuinfo";
  EXPECT_EQ(cpu.model_name, model_name);
  // Both ways for the extensions every kernel since Linux 5.2 names; the newer ones (AMX,
  // AVX512-FP16) only when the kernel lists them (an older kernel leaves them out).
  for (const char* feature :
       {"sse2", "sse3", "ssse3", "sse4_1", "sse4_2", "avx", "fma", "avx2", "avx512f", "avx512bw",
        "avx512dq", "avx512vl", "avx512cd", "avx512_vnni", "avx512_bf16"}) {
    EXPECT_EQ(cpu.has(feature), flags.count(feature) == 1) << feature;
  }
  for (const char* feature : {"avx512_fp16", "amx_tile", "amx_bf16", "amx_int8"}) {
    if (flags.count(feature)) {
      EXPECT_TRUE(cpu.has(feature)) << feature;
    }
  }
  EXPECT_EQ(cpu.avx512(), flags.count("avx512f") && flags.count("avx512bw") &&
                              flags.count("avx512dq") && flags.count("avx512vl") &&
                              flags.count("avx512cd"));
}

TEST(Cpu, DescriptionNamesFamilyModelAndExtensions) {
  const CpuInfo& cpu = cpu_info();
  if (cpu.vendor.empty()) GTEST_SKIP() << "not x86";
  const std::string line = describe_cpu(cpu);
  EXPECT_EQ(line.rfind(cpu.vendor + " family " + std::to_string(cpu.family), 0), 0u) << line;
  EXPECT_NE(line.find("sse2"), std::string::npos) << line;
  EXPECT_GT(cpu.family, 0);
}

}  // namespace
}  // namespace xmodal
