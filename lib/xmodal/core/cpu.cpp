#include "xmodal/core/cpu.h"

#include <algorithm>
#include <cstdint>
#include <cstring>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

#include "xmodal/core/strings.h"

namespace xmodal {
namespace {

#if defined(__x86_64__) || defined(__i386__)
struct Regs {
  uint32_t a = 0, b = 0, c = 0, d = 0;
};

Regs cpuid(uint32_t leaf, uint32_t subleaf = 0) {
  Regs r;
  __cpuid_count(leaf, subleaf, r.a, r.b, r.c, r.d);
  return r;
}

uint64_t xgetbv0() {
  uint32_t lo = 0, hi = 0;
  __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
  return (static_cast<uint64_t>(hi) << 32) | lo;
}

bool bit(uint32_t reg, int n) { return (reg >> n) & 1u; }

CpuInfo detect() {
  CpuInfo cpu;
  const Regs vendor = cpuid(0);
  const uint32_t max_leaf = vendor.a;
  char name[13] = {};
  std::memcpy(name, &vendor.b, 4);
  std::memcpy(name + 4, &vendor.d, 4);
  std::memcpy(name + 8, &vendor.c, 4);
  cpu.vendor = name;

  if (cpuid(0x80000000).a >= 0x80000004) {
    char brand[49] = {};
    for (uint32_t i = 0; i < 3; ++i) {
      const Regs r = cpuid(0x80000002 + i);
      std::memcpy(brand + 16 * i, &r, 16);
    }
    cpu.model_name = trim(brand);
  }
  if (max_leaf < 1) return cpu;

  const Regs l1 = cpuid(1);
  const uint32_t base_family = (l1.a >> 8) & 0xf;
  cpu.family =
      static_cast<int>(base_family == 0xf ? base_family + ((l1.a >> 20) & 0xff) : base_family);
  cpu.model = static_cast<int>((l1.a >> 4) & 0xf);
  if (base_family == 0x6 || base_family == 0xf)
    cpu.model += static_cast<int>((l1.a >> 16) & 0xf) << 4;

  // Register state the OS saves: without it an AVX / AVX-512 / AMX instruction faults.
  const bool osxsave = bit(l1.c, 27);
  const uint64_t xcr0 = osxsave ? xgetbv0() : 0;
  const bool os_avx = (xcr0 & 0x6) == 0x6;
  const bool os_avx512 = os_avx && (xcr0 & 0xe0) == 0xe0;
  const bool os_amx = (xcr0 & 0x60000) == 0x60000;

  auto& f = cpu.features;
  if (bit(l1.d, 26)) f.push_back("sse2");
  if (bit(l1.c, 0)) f.push_back("sse3");
  if (bit(l1.c, 9)) f.push_back("ssse3");
  if (bit(l1.c, 19)) f.push_back("sse4_1");
  if (bit(l1.c, 20)) f.push_back("sse4_2");
  if (os_avx && bit(l1.c, 28)) f.push_back("avx");
  if (os_avx && bit(l1.c, 29)) f.push_back("f16c");
  if (os_avx && bit(l1.c, 12)) f.push_back("fma");
  if (max_leaf >= 7) {
    const Regs l7 = cpuid(7, 0);
    const Regs l7s1 = l7.a >= 1 ? cpuid(7, 1) : Regs{};
    if (os_avx && bit(l7.b, 5)) f.push_back("avx2");
    if (os_avx && bit(l7s1.a, 4)) f.push_back("avx_vnni");
    if (os_avx512) {
      if (bit(l7.b, 16)) f.push_back("avx512f");
      if (bit(l7.b, 28)) f.push_back("avx512cd");
      if (bit(l7.b, 30)) f.push_back("avx512bw");
      if (bit(l7.b, 17)) f.push_back("avx512dq");
      if (bit(l7.b, 31)) f.push_back("avx512vl");
      if (bit(l7.b, 21)) f.push_back("avx512ifma");
      if (bit(l7.c, 1)) f.push_back("avx512vbmi");
      if (bit(l7.c, 11)) f.push_back("avx512_vnni");
      if (bit(l7s1.a, 5)) f.push_back("avx512_bf16");
      if (bit(l7.d, 23)) f.push_back("avx512_fp16");
    }
    if (os_amx) {
      if (bit(l7.d, 24)) f.push_back("amx_tile");
      if (bit(l7.d, 22)) f.push_back("amx_bf16");
      if (bit(l7.d, 25)) f.push_back("amx_int8");
    }
  }
  return cpu;
}
#else
CpuInfo detect() { return {}; }
#endif

}  // namespace

bool CpuInfo::has(const std::string& feature) const {
  return std::find(features.begin(), features.end(), feature) != features.end();
}

bool CpuInfo::avx512() const {
  return has("avx512f") && has("avx512cd") && has("avx512bw") && has("avx512dq") && has("avx512vl");
}

const CpuInfo& cpu_info() {
  static const CpuInfo cpu = detect();
  return cpu;
}

std::string describe_cpu(const CpuInfo& cpu) {
  std::string line = cpu.vendor.empty() ? std::string("not x86")
                                        : cpu.vendor + " family " + std::to_string(cpu.family) +
                                              " model " + std::to_string(cpu.model);
  if (!cpu.features.empty()) line += "; " + join(cpu.features, " ");
  return line;
}

}  // namespace xmodal
