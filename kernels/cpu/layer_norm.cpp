#include "braid/kernels/cpu/layer_norm.h"

#include <omp.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "braid/kernels/cpu/elementwise.h"

namespace braid::kernels::cpu {

namespace {

inline bool run_parallel(int64_t rows, int64_t cols) {
  return rows > 1 && rows * cols >= kParallelGrain / 4 && !omp_in_parallel();
}

// Mean and rstd of one row. The row sums run in T over the SIMD lanes, as PyTorch's kernel does, on values shifted
// by the row's first element, so a row far from zero (values near 1e4, spread near 1) sums numbers near its spread
// rather than near its offset; the variance is taken about the mean (a second pass over a row that is in cache),
// where E[x^2] - E[x]^2 would cancel. Sums over rows use double.
template <class T>
void row_moments(const T* x, int64_t cols, double eps, T& mean, T& rstd) {
  const T pivot = x[0];
  T s = 0;
#pragma omp simd reduction(+ : s)
  for (int64_t j = 0; j < cols; ++j) s += x[j] - pivot;
  const T mu = pivot + s / T(cols);
  T ss = 0;
#pragma omp simd reduction(+ : ss)
  for (int64_t j = 0; j < cols; ++j) ss += (x[j] - mu) * (x[j] - mu);
  mean = mu;
  rstd = T(1.0 / std::sqrt(double(ss) / double(cols) + eps));
}

// grad_x of one row; g = dy * w (w null: ones).
template <class T>
void row_input_grad(const T* dy, const T* x, const T* w, T mu, T rs, T* dx, int64_t cols) {
  T sg = 0, sgx = 0;
  if (w) {
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < cols; ++j) {
      sg += dy[j] * w[j];
      sgx += dy[j] * w[j] * (x[j] - mu);
    }
  } else {
#pragma omp simd reduction(+ : sg, sgx)
    for (int64_t j = 0; j < cols; ++j) {
      sg += dy[j];
      sgx += dy[j] * (x[j] - mu);
    }
  }
  // dx = rs * (g - mean(g) - xhat * mean(g * xhat)) with xhat = (x - mu) * rs, as c0 * g + c1 * (x - mu) + c2.
  const T a = sg / T(cols), b = sgx * rs / T(cols);
  const T c1 = -rs * rs * b, c2 = -rs * a;
  if (w) {
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dx[j] = rs * dy[j] * w[j] + c1 * (x[j] - mu) + c2;
  } else {
#pragma omp simd
    for (int64_t j = 0; j < cols; ++j) dx[j] = rs * dy[j] + c1 * (x[j] - mu) + c2;
  }
}

// Rows per block whose parameter-gradient sums run in T before they are added to the double totals.
constexpr int64_t kRowBlock = 32;

// The rows [begin, end) added to the per-thread totals dw and db (either may be null).
template <class T>
void add_param_grads(const T* dy, const T* x, const T* mean, const T* rstd, int64_t begin, int64_t end, int64_t cols,
                     T* block_w, T* block_b, double* dw, double* db) {
  for (int64_t r0 = begin; r0 < end; r0 += kRowBlock) {
    std::fill(block_w, block_w + cols, T(0));
    std::fill(block_b, block_b + cols, T(0));
    for (int64_t r = r0; r < std::min(end, r0 + kRowBlock); ++r) {
      const T* d = dy + r * cols;
      const T* xr = x + r * cols;
      const T mu = mean[r], rs = rstd[r];
#pragma omp simd
      for (int64_t j = 0; j < cols; ++j) {
        block_w[j] += d[j] * ((xr[j] - mu) * rs);
        block_b[j] += d[j];
      }
    }
    for (int64_t j = 0; j < cols; ++j) {
      if (dw) dw[j] += double(block_w[j]);
      if (db) db[j] += double(block_b[j]);
    }
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
  // Per thread: cols double totals for grad_weight, then cols for grad_bias.
  std::vector<double> part(sums ? size_t(threads) * 2 * size_t(cols) : 0, 0.0);
#pragma omp parallel num_threads(threads) if (parallel)
  {
    const int t = omp_get_thread_num(), nt = omp_get_num_threads();
    const int64_t begin = rows * t / nt, end = rows * (t + 1) / nt;
    if (grad_x) {
      for (int64_t r = begin; r < end; ++r)
        row_input_grad(grad_y + r * cols, x + r * cols, weight, mean[r], rstd[r], grad_x + r * cols, cols);
    }
    if (sums) {
      std::vector<T> block(2 * size_t(cols));
      double* dw = part.data() + size_t(t) * 2 * size_t(cols);
      add_param_grads(grad_y, x, mean, rstd, begin, end, cols, block.data(), block.data() + cols,
                      grad_weight ? dw : nullptr, grad_bias ? dw + cols : nullptr);
    }
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
