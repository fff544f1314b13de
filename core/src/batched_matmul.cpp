// ops::bmm: a batch of matrix products as one strided-batched GEMM on either device. Each operand is read in place
// when it is a batch of row-major or transposed matrices a fixed stride apart (attention's q, k^T, P^T, dS^T
// views); anything else is copied first.
#include <algorithm>

#include "braid/core/creation.h"
#include "braid/kernels/cpu/gemm.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_device;

namespace {

struct BatchOperand {
  Tensor keep;
  bool trans = false;
  int64_t ld = 1, stride = 0;
};

BatchOperand batch_operand(const Tensor& t) {
  const int64_t rows = t.shape()[1], cols = t.shape()[2], s0 = t.strides()[1], s1 = t.strides()[2];
  const int64_t batch_stride = t.shape()[0] == 1 ? 0 : t.strides()[0];
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= std::max<int64_t>(cols, 1)))
    return {t, false, rows == 1 ? std::max<int64_t>(cols, 1) : s0, batch_stride};
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= std::max<int64_t>(rows, 1)))
    return {t, true, cols == 1 ? std::max<int64_t>(rows, 1) : s1, batch_stride};
  Tensor c = clone(t);
  return {c, false, std::max<int64_t>(cols, 1), rows * cols};
}

void check_bmm_args(const Tensor& a, const Tensor& b) {
  check_device("bmm", a);
  check_device("bmm", b);
  check_same_device("bmm", a, b);
  check_same_dtype("bmm", a, b);
  BRAID_CHECK(is_floating(a.dtype()), "bmm: expected floating-point tensors, got ", a.dtype());
  BRAID_CHECK(a.dim() == 3 && b.dim() == 3 && a.shape()[0] == b.shape()[0] && a.shape()[2] == b.shape()[1],
              "bmm: expected [batch, m, k] @ [batch, k, n], got ", shape_str(a.shape()), " @ ", shape_str(b.shape()));
}

}  // namespace

Tensor bmm(const Tensor& a, const Tensor& b) {
  check_bmm_args(a, b);
  const int64_t batch = a.shape()[0], m = a.shape()[1], k = a.shape()[2], n = b.shape()[2];
  Tensor out = empty({batch, m, n}, TensorOptions(a.dtype(), a.device()));
  if (batch == 0 || m == 0 || n == 0) return out;
  if (k == 0) {
    detail::fill_into(out, 0);
    return out;
  }
  const BatchOperand A = batch_operand(a), B = batch_operand(b);
  dispatch_floating(a.dtype(), "bmm", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = static_cast<const T*>(A.keep.raw_data());
    const T* pb = static_cast<const T*>(B.keep.raw_data());
    T* pc = out.data<T>();
    BRAID_ON_DEVICE(
        out,
        kernels::cpu::gemm_strided_batched(A.trans, B.trans, m, n, k, T(1), pa, A.ld, A.stride, pb, B.ld, B.stride,
                                           T(0), pc, n, m * n, batch),
        kernels::cuda::gemm_strided_batched(cuda::detail::blas(out.device()), A.trans, B.trans, m, n, k, T(1), pa, A.ld,
                                            A.stride, pb, B.ld, B.stride, T(0), pc, n, m * n, batch));
  });
  return out;
}

}  // namespace braid::ops
