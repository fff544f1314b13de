// Row-major GEMM through OpenBLAS: C[m,n] = alpha * op(A) op(B) + beta * C. Transposed operands are passed as
// flags with their leading dimensions, so no caller copies a matrix to transpose it.
#pragma once

#include <cstdint>

namespace braid::kernels::cpu {

void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a, int64_t lda,
          const float* b, int64_t ldb, float beta, float* c, int64_t ldc);
void gemm(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a, int64_t lda,
          const double* b, int64_t ldb, double beta, double* c, int64_t ldc);

}  // namespace braid::kernels::cpu
