// The CPU this process runs on: model and the vector extensions both it and the OS support.
#pragma once

#include <string>
#include <vector>

namespace xmodal {

struct CpuInfo {
  std::string vendor;      ///< "GenuineIntel", "AuthenticAMD", ... ("" off x86)
  std::string model_name;  ///< the brand string, e.g. "Intel(R) Xeon(R) Platinum 8488C"
  int family = 0;          ///< display family (base + extended), e.g. 6 (Intel), 25 (Zen 3/4)
  int model = 0;           ///< display model (base + extended << 4)
  /// Vector extensions usable here, in Linux /proc/cpuinfo spelling (sse4_2, avx, fma, avx2,
  /// avx512f, avx512bw, avx512_bf16, amx_bf16, ...). An extension whose register state the
  /// OS does not enable (XCR0) is left out: code using it would fault.
  std::vector<std::string> features;

  bool has(const std::string& feature) const;
  /// AVX2 + FMA: what OpenBLAS's Haswell/Zen kernels need.
  bool avx2() const { return has("avx2") && has("fma"); }
  /// AVX-512 F, CD, BW, DQ and VL: what OpenBLAS's SkylakeX kernels need.
  bool avx512() const;
};

/// Read once with cpuid/xgetbv (no /proc access); cheap after the first call.
const CpuInfo& cpu_info();

/// "family 6 model 143, avx2 fma avx512f ...": the line `xmodal info` prints after the name.
std::string describe_cpu(const CpuInfo& cpu);

}  // namespace xmodal
