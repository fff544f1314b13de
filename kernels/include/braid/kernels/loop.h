// The geometry of an N-operand element-wise loop (operand 0 is the output): sizes and per-operand byte strides,
// broadcast dimensions having stride 0. The CPU and CUDA launchers both take it, after coalesce() has merged the
// dimensions that are contiguous for every operand.
#pragma once

#include <cstdint>

#include "braid/kernels/host_device.h"

namespace braid::kernels {

constexpr int kMaxDims = 16;

template <int N>
struct Loop {
  int ndim = 0;
  int64_t sizes[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};  // bytes

  int64_t numel() const {
    int64_t n = 1;
    for (int d = 0; d < ndim; ++d) n *= sizes[d];
    return n;
  }
};

template <int N>
Loop<N> coalesce(const Loop<N>& in) {
  Loop<N> out;
  for (int d = 0; d < in.ndim; ++d) {
    if (in.sizes[d] == 1) continue;
    if (out.ndim > 0) {
      int p = out.ndim - 1;
      bool mergeable = true;
      for (int k = 0; k < N; ++k) mergeable &= out.strides[k][p] == in.strides[k][d] * in.sizes[d];
      if (mergeable) {
        out.sizes[p] *= in.sizes[d];
        for (int k = 0; k < N; ++k) out.strides[k][p] = in.strides[k][d];
        continue;
      }
    }
    out.sizes[out.ndim] = in.sizes[d];
    for (int k = 0; k < N; ++k) out.strides[k][out.ndim] = in.strides[k][d];
    ++out.ndim;
  }
  return out;
}

}  // namespace braid::kernels
