// Helpers shared by core's op implementations (not installed).
#pragma once

#include <array>

#include "braid/core/ops.h"
#include "braid/kernels/cpu/elementwise.h"
#include "cuda_runtime.h"

namespace braid::ops::detail {

inline int64_t wrap_dim(int64_t dim, int64_t ndim, const char* op) {
  int64_t n = std::max<int64_t>(ndim, 1);
  BRAID_CHECK(dim >= -n && dim < n, op, ": dim ", dim, " out of range for a ", ndim, "-d tensor");
  return dim < 0 ? dim + n : dim;
}

inline void check_defined(const char* op, const Tensor& t) {
  BRAID_CHECK(t.defined(), op, ": got an undefined tensor");
}

// CPU tensors always have kernels; CUDA tensors when Braid was built with the CUDA backend.
inline void check_device(const char* op, const Tensor& t) {
  check_defined(op, t);
#if !BRAID_WITH_CUDA
  BRAID_CHECK(t.device().is_cpu(), op, ": no kernel for device ", t.device(),
              " in this build (Braid was built without CUDA)");
#endif
}

// The writes behind copy_, fill_ and mul_ without their in-place checks and version bump: for tensors the calling
// op allocated itself (clone's result, linear's output), or whose checks and bump it has already done.
void copy_into(const Tensor& dst, const Tensor& src);
void fill_into(const Tensor& dst, double value);
void scale_into(const Tensor& dst, double value);

#if BRAID_WITH_CUDA
inline kernels::cuda::Stream stream_of(const Tensor& t) { return cuda::detail::stream(t.device()); }
#endif

// A loop over out_shape with every operand broadcast to it (operand 0 is the output).
template <int N>
kernels::cpu::Loop<N> make_loop(const Shape& out_shape, const std::array<const Tensor*, N>& ts) {
  kernels::cpu::Loop<N> L;
  int nd = int(out_shape.size());
  BRAID_CHECK(nd <= kernels::cpu::kMaxDims, "element-wise op: at most ", kernels::cpu::kMaxDims,
              " dimensions are supported, got ", nd);
  L.ndim = nd;
  for (int d = 0; d < nd; ++d) L.sizes[d] = out_shape[d];
  for (int k = 0; k < N; ++k) {
    const Tensor& t = *ts[k];
    int off = nd - int(t.dim());
    int64_t es = int64_t(element_size(t.dtype()));
    for (int d = 0; d < nd; ++d) {
      int td = d - off;
      L.strides[k][d] = (td < 0 || t.shape()[td] == 1) ? 0 : t.strides()[td] * es;
    }
  }
  return L;
}

}  // namespace braid::ops::detail

// Runs cpu_call, or cuda_call for a tensor on a CUDA device (a CPU-only build drops cuda_call's text).
#if BRAID_WITH_CUDA
#define BRAID_ON_DEVICE(t, cpu_call, cuda_call) \
  do {                                          \
    if ((t).device().is_cuda()) {               \
      cuda_call;                                \
    } else {                                    \
      cpu_call;                                 \
    }                                           \
  } while (0)
#else
#define BRAID_ON_DEVICE(t, cpu_call, cuda_call) \
  do {                                          \
    cpu_call;                                   \
  } while (0)
#endif
