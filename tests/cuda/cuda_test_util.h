// The fixture of the CUDA suites: skips without a device, poisons new allocations (an unwritten output element is
// NaN) and synchronises after each test so an asynchronous kernel fault is pinned on the test that caused it.
#pragma once

#include <gtest/gtest.h>

#include "braid/core/cuda.h"
#include "braid/core/device.h"

namespace braid::test {

inline const Device kGpu = Device::cuda(0);

class CudaTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!cuda::is_available()) GTEST_SKIP() << "no CUDA device";
    cuda::set_poison_allocations(true);
  }
  void TearDown() override {
    if (cuda::is_available()) cuda::synchronize();
  }
};

}  // namespace braid::test
