// Batched GEMM on the CPU. Attention multiplies B*H small matrices (e.g. 64 of 128x128x32): OpenBLAS splits
// each over its threads and synchronises them per call, which at two threads made the batch slower than on one
// (and far slower when another process shares the cores). Giving each thread whole GEMMs needs no
// synchronisation inside the batch; OpenBLAS's OpenMP build runs single-threaded inside a parallel region.
#include <omp.h>

#include "braid/kernels/cpu/gemm.h"

namespace braid::kernels::cpu {

namespace {

// Whole GEMMs per thread when the batch keeps every thread busy; otherwise BLAS threads inside each GEMM.
bool per_thread(int64_t batch) {
  const int threads = omp_get_max_threads();
  return threads > 1 && batch >= threads && !omp_in_parallel();
}

template <class T>
void run_batch(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, T alpha, const T* a, int64_t lda,
               int64_t stride_a, const T* b, int64_t ldb, int64_t stride_b, T beta, T* c, int64_t ldc, int64_t stride_c,
               int64_t batch) {
#pragma omp parallel for schedule(static) if (per_thread(batch))
  for (int64_t i = 0; i < batch; ++i)
    gemm(trans_a, trans_b, m, n, k, alpha, a + i * stride_a, lda, b + i * stride_b, ldb, beta, c + i * stride_c, ldc);
}

}  // namespace

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, float alpha, const float* a,
                          int64_t lda, int64_t stride_a, const float* b, int64_t ldb, int64_t stride_b, float beta,
                          float* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  run_batch(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch);
}

void gemm_strided_batched(bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, double alpha, const double* a,
                          int64_t lda, int64_t stride_a, const double* b, int64_t ldb, int64_t stride_b, double beta,
                          double* c, int64_t ldc, int64_t stride_c, int64_t batch) {
  run_batch(trans_a, trans_b, m, n, k, alpha, a, lda, stride_a, b, ldb, stride_b, beta, c, ldc, stride_c, batch);
}

}  // namespace braid::kernels::cpu
