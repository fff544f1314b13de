// Row-major GEMM through cuBLAS with the semantics of kernels/cpu/gemm.cpp (cblas, CblasRowMajor). cuBLAS is
// column-major, and a row-major matrix is the column-major view of its transpose, so C = op(A) op(B) in row-major
// is C^T = op(B)^T op(A)^T in column-major: the operands swap places and m with n, the transpose flags and
// leading dimensions stay with their operands. The handle's math mode is left as the caller set it (the default
// keeps float32 in FP32, no TF32), and its pointer mode must be host (alpha, beta are host scalars).
#include <climits>
#include <cstdint>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

cublasOperation_t op_of(bool trans) { return trans ? CUBLAS_OP_T : CUBLAS_OP_N; }

// The operands as cuBLAS sees them (column-major, after the swap).
struct ColumnMajor {
  cublasOperation_t op_first, op_second;  // of B, then of A
  int64_t m, n, k;                        // cuBLAS's m = our n, its n = our m
  int64_t ld_first, ld_second, ldc;       // ldb, lda, ldc

  bool fits_int() const {
    for (int64_t v : {m, n, k, ld_first, ld_second, ldc})
      if (v > INT_MAX) return false;
    return true;
  }
};

ColumnMajor swap_to_column_major(const char* name, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k,
                                 int64_t lda, int64_t ldb, int64_t ldc) {
  BRAID_CHECK(m >= 0 && n >= 0 && k >= 0, name, ": negative size m=", m, " n=", n, " k=", k);
  return ColumnMajor{op_of(trans_b), op_of(trans_a), n, m, k, ldb, lda, ldc};
}

// k == 0: C = beta * C without reading A or B (as BLAS; beta == 0 overwrites, so NaNs in C do not survive).
// Done here rather than by cuBLAS, which would also validate leading dimensions that a caller may pass as 0.
template <class T>
__global__ void __launch_bounds__(detail::kThreads)
    scale_c_kernel(T* c, int64_t ldc, int64_t stride_c, int64_t m, int64_t n, int64_t batch, T beta) {
  const int64_t per = m * n, total = per * batch;
  for (int64_t idx = detail::global_thread(); idx < total; idx += detail::grid_stride()) {
    const int64_t b = idx / per, rest = idx - b * per;
    const int64_t i = rest / n, j = rest - i * n;
    T& x = c[b * stride_c + i * ldc + j];
    x = beta == T(0) ? T(0) : beta * x;
  }
}

template <class T>
void scale_c(BlasHandle handle, T* c, int64_t ldc, int64_t stride_c, int64_t m, int64_t n, int64_t batch, T beta) {
  if (beta == T(1)) return;
  cudaStream_t stream = nullptr;
  BRAID_CUBLAS_CHECK(cublasGetStream(handle, &stream));
  scale_c_kernel<T><<<detail::grid_for(m * n * batch, detail::kThreads), detail::kThreads, 0, stream>>>(
      c, ldc, stride_c, m, n, batch, beta);
  BRAID_CUDA_CHECK_LAUNCH();
}

}  // namespace

void gemm(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
          int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc) {
  const ColumnMajor g = swap_to_column_major("gemm", trans_a, trans_b, m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_c(handle, c, ldc, 0, m, n, 1, beta);
  if (g.fits_int()) {
    BRAID_CUBLAS_CHECK(cublasSgemm(handle, g.op_first, g.op_second, int(g.m), int(g.n), int(g.k), &alpha, b,
                                   int(g.ld_first), a, int(g.ld_second), &beta, c, int(g.ldc)));
  } else {
    BRAID_CUBLAS_CHECK(cublasSgemm_64(handle, g.op_first, g.op_second, g.m, g.n, g.k, &alpha, b, g.ld_first, a,
                                      g.ld_second, &beta, c, g.ldc));
  }
}

void gemm(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
          int64_t lda, const double* b, int64_t ldb, double beta, double* c, int64_t ldc) {
  const ColumnMajor g = swap_to_column_major("gemm", trans_a, trans_b, m, n, k, lda, ldb, ldc);
  if (m == 0 || n == 0) return;
  if (k == 0) return scale_c(handle, c, ldc, 0, m, n, 1, beta);
  if (g.fits_int()) {
    BRAID_CUBLAS_CHECK(cublasDgemm(handle, g.op_first, g.op_second, int(g.m), int(g.n), int(g.k), &alpha, b,
                                   int(g.ld_first), a, int(g.ld_second), &beta, c, int(g.ldc)));
  } else {
    BRAID_CUBLAS_CHECK(cublasDgemm_64(handle, g.op_first, g.op_second, g.m, g.n, g.k, &alpha, b, g.ld_first, a,
                                      g.ld_second, &beta, c, g.ldc));
  }
}

void gemm_strided_batched(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                          const float* a, int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b,
                          float beta, float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const ColumnMajor g = swap_to_column_major("gemm_strided_batched", trans_a, trans_b, m, n, k, lda, ldb, ldc);
  BRAID_CHECK(batch >= 0, "gemm_strided_batched: negative batch count ", batch);
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) return scale_c(handle, c, ldc, stride_c, m, n, batch, beta);
  if (g.fits_int() && batch <= INT_MAX) {
    BRAID_CUBLAS_CHECK(cublasSgemmStridedBatched(handle, g.op_first, g.op_second, int(g.m), int(g.n), int(g.k), &alpha,
                                                 b, int(g.ld_first), stride_b, a, int(g.ld_second), stride_a, &beta, c,
                                                 int(g.ldc), stride_c, int(batch)));
  } else {
    BRAID_CUBLAS_CHECK(cublasSgemmStridedBatched_64(handle, g.op_first, g.op_second, g.m, g.n, g.k, &alpha, b,
                                                    g.ld_first, stride_b, a, g.ld_second, stride_a, &beta, c, g.ldc,
                                                    stride_c, batch));
  }
}

void gemm_strided_batched(BlasHandle handle, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha,
                          const double* a, int64_t lda, int64_t stride_a, const double* b, int64_t ldb,
                          int64_t stride_b, double beta, double* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  const ColumnMajor g = swap_to_column_major("gemm_strided_batched", trans_a, trans_b, m, n, k, lda, ldb, ldc);
  BRAID_CHECK(batch >= 0, "gemm_strided_batched: negative batch count ", batch);
  if (m == 0 || n == 0 || batch == 0) return;
  if (k == 0) return scale_c(handle, c, ldc, stride_c, m, n, batch, beta);
  if (g.fits_int() && batch <= INT_MAX) {
    BRAID_CUBLAS_CHECK(cublasDgemmStridedBatched(handle, g.op_first, g.op_second, int(g.m), int(g.n), int(g.k), &alpha,
                                                 b, int(g.ld_first), stride_b, a, int(g.ld_second), stride_a, &beta, c,
                                                 int(g.ldc), stride_c, int(batch)));
  } else {
    BRAID_CUBLAS_CHECK(cublasDgemmStridedBatched_64(handle, g.op_first, g.op_second, g.m, g.n, g.k, &alpha, b,
                                                    g.ld_first, stride_b, a, g.ld_second, stride_a, &beta, c, g.ldc,
                                                    stride_c, batch));
  }
}

}  // namespace braid::kernels::cuda
