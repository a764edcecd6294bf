#include "xmodal/core/cpu.h"

#include <gtest/gtest.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include <cstring>
#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "xmodal/core/strings.h"

namespace xmodal {
namespace {

// The first "flags" line of /proc/cpuinfo: the kernel's own reading of cpuid, with the
// extensions the OS does not enable already removed. (Its "model name" is not compared: a
// hypervisor may word it differently from CPUID's brand string, e.g. "AMD EPYC" against
// "Oxide Virtual Turin-like Processor".)
std::set<std::string> proc_flags() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  std::set<std::string> flags;
  while (std::getline(in, line)) {
    const auto colon = line.find(':');
    if (colon == std::string::npos) continue;
    const std::string key = trim(line.substr(0, colon));
    if (key == "flags" && flags.empty()) {
      std::istringstream words(line.substr(colon + 1));
      std::string word;
      while (words >> word) flags.insert(word == "pni" ? "sse3" : word);
    }
  }
  return flags;
}

TEST(Cpu, FeaturesAgreeWithProcCpuinfo) {
  const auto flags = proc_flags();
  const CpuInfo& cpu = cpu_info();
  if (flags.empty() || cpu.vendor.empty()) GTEST_SKIP() << "no x86 /proc/cpuinfo";
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

// The model name is CPUID's brand string (leaves 0x80000002-4), read here on its own.
TEST(Cpu, ModelNameIsTheCpuidBrandString) {
#if defined(__x86_64__) || defined(__i386__)
  unsigned regs[12] = {};
  if (__get_cpuid_max(0x80000000, nullptr) < 0x80000004) GTEST_SKIP() << "no brand string";
  for (unsigned i = 0; i < 3; ++i) {
    __get_cpuid(0x80000002 + i, &regs[4 * i], &regs[4 * i + 1], &regs[4 * i + 2], &regs[4 * i + 3]);
  }
  char brand[49] = {};
  std::memcpy(brand, regs, 48);
  EXPECT_EQ(cpu_info().model_name, trim(brand));
#else
  GTEST_SKIP() << "not x86";
#endif
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
