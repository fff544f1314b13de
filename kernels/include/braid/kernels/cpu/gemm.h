// Row-major GEMM through OpenBLAS: C[m,n] = alpha * op(A) op(B) + beta * C. Transposed operands are passed as
// flags with their leading dimensions, so no caller copies a matrix to transpose it.
#pragma once

#include <cstdint>

namespace braid::kernels::cpu {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

// Batched: matrix i of each operand starts stride_* elements after matrix i-1 (0 broadcasts one matrix), as the
// CUDA kernels' gemm_strided_batched. With at least as many matrices as threads each thread runs whole GEMMs on
// its own (kernels/cpu/gemm_batched.cpp): splitting a small GEMM over threads costs more than it saves.
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                          int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                          float* c, int64_t ldc, int64_t stride_c, int64_t batch);
void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                          int64_t lda, int64_t stride_a, const double* b, int64_t ldb, int64_t stride_b, double beta,
                          double* c, int64_t ldc, int64_t stride_c, int64_t batch);

}  // namespace braid::kernels::cpu
