// The fused softmax of scaled dot-product attention and its backward, with the math of
// kernels/cpu/attention_softmax.cpp: a group of threads per row (a few lanes, a warp or the whole block, by row
// length), the row max and the sums combined through warp shuffles, sums in double, masked (causal) entries
// written as exact zeros.
#include <cmath>
#include <cstdint>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

using namespace detail;

template <class T>
struct MaxOf {
  __device__ __forceinline__ T operator()(T a, T b) const { return (b > a || b != b) ? b : a; }
};
struct SumOf {
  __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};

__device__ __forceinline__ int64_t visible(int64_t row, int64_t cols, int64_t q_len, bool causal) {
  if (!causal) return cols;
  const int64_t n = row % q_len + 1;
  return n < cols ? n : cols;
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_softmax_kernel(const T* scores, T* probs, int64_t rows, int64_t cols, int64_t q_len, bool causal,
                             T scale) {
  __shared__ T smax[kThreads / 32];
  __shared__ double ssum[kThreads / 32];
  const int64_t g = blockDim.x;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    const bool valid = row < rows;
    const T* s = scores + (valid ? row : 0) * cols;
    T* p = probs + (valid ? row : 0) * cols;
    const int64_t n = valid ? visible(row, cols, q_len, causal) : 0;
    T m = strided_fold(
        int64_t(threadIdx.x), n, g, -T(INFINITY), [&](int64_t j) { return s[j] * scale; }, MaxOf<T>{});
    m = group_reduce(m, MaxOf<T>{}, smax);
    double sum = strided_fold(
        int64_t(threadIdx.x), n, g, 0.0, [&](int64_t j) { return double(std::exp(s[j] * scale - m)); }, SumOf{});
    sum = group_reduce(sum, SumOf{}, ssum);
    const T inv = T(1.0 / sum);
    const int64_t end = valid ? cols : 0;
    for (int64_t j = threadIdx.x; j < end; j += g) p[j] = j < n ? std::exp(s[j] * scale - m) * inv : T(0);
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    attention_softmax_backward_kernel(const T* grad_probs, const T* probs, T* grad_scores, int64_t rows, int64_t cols,
                                      int64_t q_len, bool causal, T scale) {
  __shared__ double ssum[kThreads / 32];
  const int64_t g = blockDim.x;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    const bool valid = row < rows;
    const int64_t base = (valid ? row : 0) * cols;
    const int64_t n = valid ? visible(row, cols, q_len, causal) : 0;
    double dot = strided_fold(
        int64_t(threadIdx.x), n, g, 0.0,
        [&](int64_t j) { return double(grad_probs[base + j]) * double(probs[base + j]); }, SumOf{});
    dot = group_reduce(dot, SumOf{}, ssum);
    const T c = T(dot);
    const int64_t end = valid ? cols : 0;
    for (int64_t j = threadIdx.x; j < end; j += g)
      grad_scores[base + j] = j < n ? scale * probs[base + j] * (grad_probs[base + j] - c) : T(0);
  }
}

}  // namespace

template <class T>
void attention_softmax(const T* scores, T* probs, int64_t rows, int64_t cols, int64_t q_len, bool causal, T scale,
                       Stream stream) {
  if (rows <= 0 || cols <= 0) return;
  const int g = row_group(cols);
  attention_softmax_kernel<T><<<grid_for(rows, kThreads / g), dim3(g, kThreads / g), 0, stream>>>(
      scores, probs, rows, cols, q_len, causal, scale);
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
void attention_softmax_backward(const T* grad_probs, const T* probs, T* grad_scores, int64_t rows, int64_t cols,
                                int64_t q_len, bool causal, T scale, Stream stream) {
  if (rows <= 0 || cols <= 0) return;
  const int g = row_group(cols);
  attention_softmax_backward_kernel<T><<<grid_for(rows, kThreads / g), dim3(g, kThreads / g), 0, stream>>>(
      grad_probs, probs, grad_scores, rows, cols, q_len, causal, scale);
  BRAID_CUDA_CHECK_LAUNCH();
}

#define BRAID_INSTANTIATE(T)                                                                    \
  template void attention_softmax<T>(const T*, T*, int64_t, int64_t, int64_t, bool, T, Stream); \
  template void attention_softmax_backward<T>(const T*, const T*, T*, int64_t, int64_t, int64_t, bool, T, Stream);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cuda
