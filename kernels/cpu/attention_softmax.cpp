#include "braid/kernels/cpu/attention_softmax.h"

#include <omp.h>

#include <Eigen/Core>
#include <algorithm>

#include "braid/kernels/cpu/elementwise.h"

namespace braid::kernels::cpu {

namespace {

// The keys row r attends to: a causal row stops at its own query position.
inline int64_t visible(int64_t r, int64_t cols, int64_t q_len, bool causal) {
  return causal ? std::min(cols, r % q_len + 1) : cols;
}

inline bool run_parallel(int64_t rows, int64_t cols) {
  return rows > 1 && rows * cols >= kParallelGrain / 4 && !omp_in_parallel();
}

}  // namespace

template <class T>
void attention_softmax(const T* scores, T* probs, int64_t rows, int64_t cols, int64_t q_len, bool causal, T scale) {
  using Row = Eigen::Array<T, Eigen::Dynamic, 1>;
  if (cols <= 0) return;
#pragma omp parallel for schedule(static) if (run_parallel(rows, cols))
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = visible(r, cols, q_len, causal);
    Eigen::Map<const Row> s(scores + r * cols, n);
    Eigen::Map<Row> p(probs + r * cols, n);
    // Rounding is monotone, so the largest scaled score is the scaled extreme of the raw ones.
    const T m = scale >= T(0) ? scale * s.maxCoeff() : scale * s.minCoeff();
    p = (s * scale - m).exp();
    p *= T(1.0 / p.template cast<double>().sum());
    std::fill(probs + r * cols + n, probs + (r + 1) * cols, T(0));
  }
}

template <class T>
void attention_softmax_backward(const T* grad_probs, const T* probs, T* grad_scores, int64_t rows, int64_t cols,
                                int64_t q_len, bool causal, T scale) {
  if (cols <= 0) return;
#pragma omp parallel for schedule(static) if (run_parallel(rows, cols))
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t n = visible(r, cols, q_len, causal);
    const T* g = grad_probs + r * cols;
    const T* p = probs + r * cols;
    T* d = grad_scores + r * cols;
    double dot = 0;
#pragma omp simd reduction(+ : dot)
    for (int64_t j = 0; j < n; ++j) dot += double(g[j]) * double(p[j]);
    const T c = T(dot);
#pragma omp simd
    for (int64_t j = 0; j < n; ++j) d[j] = scale * p[j] * (g[j] - c);
    std::fill(d + n, d + cols, T(0));
  }
}

#define BRAID_INSTANTIATE(T)                                                            \
  template void attention_softmax<T>(const T*, T*, int64_t, int64_t, int64_t, bool, T); \
  template void attention_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, T);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cpu
