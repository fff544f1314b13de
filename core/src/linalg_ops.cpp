#include "braid/core/creation.h"
#include "braid/kernels/cpu/gemm.h"
#include "op_util.h"

namespace braid::ops {

using detail::check_device;

namespace {

// How BLAS reads a 2-D tensor without copying: row-major (trans=false) or as the transpose of a row-major
// matrix (trans=true), with its leading dimension. Other layouts are copied first.
struct BlasOperand {
  Tensor keep;
  bool trans = false;
  int64_t ld = 1;
};

BlasOperand blas_operand(const Tensor& m) {
  int64_t rows = m.shape()[0], cols = m.shape()[1], s0 = m.strides()[0], s1 = m.strides()[1];
  if ((s1 == 1 || cols == 1) && (rows == 1 || s0 >= std::max<int64_t>(cols, 1)))
    return {m, false, rows == 1 ? std::max<int64_t>(cols, 1) : s0};
  if ((s0 == 1 || rows == 1) && (cols == 1 || s1 >= std::max<int64_t>(rows, 1)))
    return {m, true, cols == 1 ? std::max<int64_t>(rows, 1) : s1};
  Tensor c = clone(m);
  return {c, false, std::max<int64_t>(cols, 1)};
}

// gemm_into without its overlap checks and version bump: matmul and linear write outputs they allocated.
void run_gemm(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  check_device("matmul", a);
  check_device("matmul", b);
  check_device("matmul", out);
  check_same_device("matmul", a, b);
  check_same_device("matmul", out, a);
  check_same_dtype("matmul", a, b);
  check_same_dtype("matmul", out, a);
  BRAID_CHECK(a.dim() == 2 && b.dim() == 2 && out.dim() == 2, "matmul: gemm needs 2-D operands, got ",
              shape_str(a.shape()), " @ ", shape_str(b.shape()), " -> ", shape_str(out.shape()));
  int64_t m = a.shape()[0], k = a.shape()[1], n = b.shape()[1];
  BRAID_CHECK(b.shape()[0] == k, "matmul: inner dimensions differ: ", shape_str(a.shape()), " @ ",
              shape_str(b.shape()));
  BRAID_CHECK(out.shape()[0] == m && out.shape()[1] == n, "matmul: output ", shape_str(out.shape()),
              " should be [", m, ", ", n, "]");
  BRAID_CHECK(out.strides()[1] == 1 || n <= 1, "matmul: output rows must be contiguous");
  if (m == 0 || n == 0) return;
  if (k == 0) {
    if (beta == 0) detail::fill_into(out, 0);
    else detail::scale_into(out, beta);
    return;
  }
  BlasOperand A = blas_operand(a), B = blas_operand(b);
  int64_t ldc = m == 1 ? std::max<int64_t>(n, 1) : out.strides()[0];
  dispatch_floating(a.dtype(), "matmul", [&](auto tag) {
    using T = typename decltype(tag)::type;
    const T* pa = static_cast<const T*>(A.keep.raw_data());
    const T* pb = static_cast<const T*>(B.keep.raw_data());
    T* pc = static_cast<T*>(out.raw_data());
    BRAID_ON_DEVICE(out, kernels::cpu::gemm(A.trans, B.trans, m, n, k, T(alpha), pa, A.ld, pb, B.ld, T(beta), pc, ldc),
                    kernels::cuda::gemm(cuda::detail::blas(out.device()), A.trans, B.trans, m, n, k, T(alpha), pa,
                                        A.ld, pb, B.ld, T(beta), pc, ldc));
  });
}

}  // namespace

void gemm_into(const Tensor& out, const Tensor& a, const Tensor& b, double alpha, double beta) {
  check_device("matmul", out);
  check_device("matmul", a);
  check_device("matmul", b);
  // BLAS reads whole rows and columns of a and b while it writes out, so no overlap at all is safe.
  check_no_internal_overlap("matmul", out);
  check_no_overlap("matmul", out, "output", a, "first operand");
  check_no_overlap("matmul", out, "output", b, "second operand");
  out.bump_version();
  run_gemm(out, a, b, alpha, beta);
}

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_device("matmul", a);
  check_device("matmul", b);
  check_same_device("matmul", a, b);
  check_same_dtype("matmul", a, b);
  BRAID_CHECK(a.dim() >= 1 && b.dim() >= 1, "matmul: both operands need at least 1 dim, got ", shape_str(a.shape()),
              " @ ", shape_str(b.shape()));
  BRAID_CHECK(is_floating(a.dtype()), "matmul: expected floating-point tensors, got ", a.dtype());
  // b first, so that vector @ vector ends as a 0-d dot product ([1, 1] -> [1] -> []).
  if (b.dim() == 1) return squeeze(matmul(a, unsqueeze(b, 1)), -1);
  if (a.dim() == 1) return squeeze(matmul(unsqueeze(a, 0), b), -2);
  int64_t k = a.shape().back();
  BRAID_CHECK(b.shape()[b.dim() - 2] == k, "matmul: inner dimensions differ: ", shape_str(a.shape()), " @ ",
              shape_str(b.shape()), " (", k, " vs ", b.shape()[b.dim() - 2], ")");
  int64_t n = b.shape().back();
  if (b.dim() == 2) {
    Shape lead(a.shape().begin(), a.shape().end() - 1);
    int64_t m = shape_numel(lead);
    Tensor a2 = a.dim() == 2 ? a : reshape(a, {m, k});
    Tensor out = empty({m, n}, TensorOptions(a.dtype(), a.device()));
    run_gemm(out, a2, b, 1, 0);
    lead.push_back(n);
    return a.dim() == 2 ? out : view(out, lead);
  }
  BRAID_CHECK(a.dim() <= 3 && b.dim() == 3, "matmul: batched matmul supports [B, M, K] @ [B, K, N] (or one side 2-D), "
              "got ", shape_str(a.shape()), " @ ", shape_str(b.shape()));
  Tensor a3 = a.dim() == 2 ? unsqueeze(a, 0) : a;
  int64_t ba = a3.shape()[0], bb = b.shape()[0];
  BRAID_CHECK(ba == bb || ba == 1 || bb == 1, "matmul: batch sizes ", ba, " and ", bb, " do not broadcast (",
              shape_str(a.shape()), " @ ", shape_str(b.shape()), ")");
  int64_t batch = std::max(ba, bb), m = a3.shape()[1];
  Tensor out = empty({batch, m, n}, TensorOptions(a.dtype(), a.device()));
  for (int64_t i = 0; i < batch; ++i)
    run_gemm(select(out, 0, i), select(a3, 0, ba == 1 ? 0 : i), select(b, 0, bb == 1 ? 0 : i), 1, 0);
  return out;
}

Tensor linear(const Tensor& x, const Tensor& w, const Tensor& bias) {
  check_device("linear", x);
  check_device("linear", w);
  BRAID_CHECK(w.dim() == 2, "linear: weight must be [out_features, in_features], got ", shape_str(w.shape()));
  BRAID_CHECK(x.dim() >= 1 && x.shape().back() == w.shape()[1], "linear: input ", shape_str(x.shape()),
              " does not end in in_features = ", w.shape()[1], " (weight ", shape_str(w.shape()), ")");
  check_same_device("linear", x, w);
  check_same_dtype("linear", x, w);
  int64_t in = w.shape()[1], outf = w.shape()[0];
  Shape lead(x.shape().begin(), x.shape().end() - 1);
  int64_t m = shape_numel(lead);
  Tensor x2 = reshape(x, {m, in});
  Tensor out = empty({m, outf}, TensorOptions(x.dtype(), x.device()));
  double beta = 0;
  if (bias.defined()) {
    check_device("linear", bias);
    check_same_device("linear", x, bias);
    check_same_dtype("linear", x, bias);
    BRAID_CHECK(bias.dim() == 1 && bias.shape()[0] == outf, "linear: bias must be [", outf, "], got ",
                shape_str(bias.shape()));
    detail::copy_into(out, bias);
    beta = 1;
  }
  run_gemm(out, x2, transpose(w, 0, 1), 1, beta);
  lead.push_back(outf);
  return view(out, lead);
}

}  // namespace braid::ops
