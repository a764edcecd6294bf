// Every test process runs on the BLAS kernels the xmodal binary would choose on this machine
// (core/blas.h), so the module parity tests check the kernels in use, not OpenBLAS's default.
#include <gtest/gtest.h>

#include "xmodal/core/blas.h"

namespace {

class BlasKernelEnvironment : public ::testing::Environment {
 public:
  void SetUp() override { xmodal::select_blas_kernel(); }
};

[[maybe_unused]] ::testing::Environment* const kBlasKernelEnvironment =
    ::testing::AddGlobalTestEnvironment(new BlasKernelEnvironment);

}  // namespace
