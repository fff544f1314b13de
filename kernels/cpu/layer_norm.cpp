#include "braid/kernels/cpu/layer_norm.h"

#include <omp.h>

#include <cmath>
#include <vector>

#include "braid/kernels/cpu/elementwise.h"

namespace braid::kernels::cpu {

namespace {

inline bool run_parallel(int64_t rows, int64_t cols) {
  return rows > 1 && rows * cols >= kParallelGrain / 4 && !omp_in_parallel();
}

// Mean and rstd of one row: the variance is taken about the mean (two passes over a row that is in cache), which
// keeps rows with a large offset exact where E[x^2] - E[x]^2 would cancel.
template <class T>
void row_moments(const T* x, int64_t cols, double eps, T& mean, T& rstd) {
  double s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < cols; ++j) s += double(x[j]);
  const double mu = s / double(cols);
  double ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < cols; ++j) ss += (double(x[j]) - mu) * (double(x[j]) - mu);
  mean = T(mu);
  rstd = T(1.0 / std::sqrt(ss / double(cols) + eps));
}

// grad_x of one row, and its contributions to the column sums of grad_weight and grad_bias.
template <class T>
void row_backward(const T* dy, const T* x, const T* w, T mu, T rs, T* dx, double* dw, double* db, int64_t cols) {
  if (dx) {
    double sg = 0, sgx = 0;
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < cols; ++j) {
      const T g = w ? dy[j] * w[j] : dy[j];
      sg += double(g);
      sgx += double(g) * double((x[j] - mu) * rs);
    }
    const T a = T(sg / double(cols)), b = T(sgx / double(cols));
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) {
      const T g = w ? dy[j] * w[j] : dy[j];
      dx[j] = rs * (g - a - (x[j] - mu) * rs * b);
    }
  }
  if (dw) {
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dw[j] += double(dy[j]) * double((x[j] - mu) * rs);
  }
  if (db) {
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) db[j] += double(dy[j]);
  }
}

}  // namespace

template <class T>
void layer_norm(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                double eps) {
  if (cols <= 0) return;
#pragma omp parallel for schedule(static) if (run_parallel(rows, cols))
  for (int64_t r = 0; r < rows; ++r) {
    const T* xr = x + r * cols;
    T* yr = y + r * cols;
    T mu, rs;
    row_moments(xr, cols, eps, mu, rs);
    mean[r] = mu;
    rstd[r] = rs;
    if (weight && bias) {
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) yr[j] = (xr[j] - mu) * rs * weight[j] + bias[j];
    } else {
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) {
        T v = (xr[j] - mu) * rs;
        if (weight) v *= weight[j];
        if (bias) v += bias[j];
        yr[j] = v;
      }
    }
  }
}

template <class T>
void layer_norm_backward(const T* grad_y, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                         T* grad_weight, T* grad_bias, int64_t rows, int64_t cols) {
  if (cols <= 0) return;
  const bool parallel = run_parallel(rows, cols);
  const int threads = parallel ? omp_get_max_threads() : 1;
  const bool sums = grad_weight || grad_bias;
  // Per thread: cols partial sums for grad_weight, then cols for grad_bias.
  std::vector<double> part(sums ? size_t(threads) * 2 * size_t(cols) : 0, 0.0);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    double* dw = grad_weight ? part.data() + size_t(omp_get_thread_num()) * 2 * size_t(cols) : nullptr;
    double* db = grad_bias ? part.data() + (size_t(omp_get_thread_num()) * 2 + 1) * size_t(cols) : nullptr;
#pragma omp for schedule(static)
    for (int64_t r = 0; r < rows; ++r)
      row_backward(grad_y + r * cols, x + r * cols, weight, mean[r], rstd[r], grad_x ? grad_x + r * cols : nullptr, dw,
                   db, cols);
  }
  if (!sums) return;
  for (int64_t j = 0; j < cols; ++j) {
    double w = 0, b = 0;
    for (int t = 0; t < threads; ++t) {
      w += part[(size_t(t) * 2) * size_t(cols) + size_t(j)];
      b += part[(size_t(t) * 2 + 1) * size_t(cols) + size_t(j)];
    }
    if (grad_weight) grad_weight[j] = T(w);
    if (grad_bias) grad_bias[j] = T(b);
  }
}

#define BRAID_INSTANTIATE(T)                                                                       \
  template void layer_norm<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, double); \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cpu
