// Fused layer normalisation, forward and backward, with the math of kernels/cpu/layer_norm.cpp: a group of threads
// per row (a few lanes, a warp or the whole block, by row length) for the row's mean and rstd and for grad_x, sums
// in double (the CPU sums a row in T over its SIMD lanes: results agree to T's rounding); grad_weight and grad_bias are
// column sums over the rows, a block per tile of 32 columns whose threads split the rows and combine in shared memory
// in a fixed order.
#include <cmath>
#include <cstdint>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

using namespace detail;

struct SumOf {
  __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};

struct TwoSums {
  double a, b;
};
struct SumBoth {
  __device__ __forceinline__ TwoSums operator()(TwoSums x, TwoSums y) const { return {x.a + y.a, x.b + y.b}; }
};

template <class T>
__global__ void __launch_bounds__(kThreads) layer_norm_kernel(const T* x, const T* weight, const T* bias, T* y, T* mean,
                                                              T* rstd, int64_t rows, int64_t cols, double eps) {
  __shared__ double ssum[kThreads / 32];
  const int64_t g = blockDim.x;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    const bool valid = row < rows;
    const T* xr = x + (valid ? row : 0) * cols;
    T* yr = y + (valid ? row : 0) * cols;
    const int64_t end = valid ? cols : 0;
    double s = strided_fold(
        int64_t(threadIdx.x), end, g, 0.0, [&](int64_t j) { return double(xr[j]); }, SumOf{});
    const double mu = group_reduce(s, SumOf{}, ssum) / double(cols);
    double ss = strided_fold(
        int64_t(threadIdx.x), end, g, 0.0,
        [&](int64_t j) {
          const double d = double(xr[j]) - mu;
          return d * d;
        },
        SumOf{});
    ss = group_reduce(ss, SumOf{}, ssum);
    const T m = T(mu), rs = T(1.0 / sqrt(ss / double(cols) + eps));
    if (valid && threadIdx.x == 0) {
      mean[row] = m;
      rstd[row] = rs;
    }
    for (int64_t j = threadIdx.x; j < end; j += g) {
      T v = (xr[j] - m) * rs;
      if (weight) v *= weight[j];
      if (bias) v += bias[j];
      yr[j] = v;
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    layer_norm_backward_input_kernel(const T* dy, const T* x, const T* weight, const T* mean, const T* rstd, T* dx,
                                     int64_t rows, int64_t cols) {
  __shared__ TwoSums ssum[kThreads / 32];
  const int64_t g = blockDim.x;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    const bool valid = row < rows;
    const int64_t base = (valid ? row : 0) * cols;
    const int64_t end = valid ? cols : 0;
    const T mu = mean[valid ? row : 0], rs = rstd[valid ? row : 0];
    TwoSums s = strided_fold(
        int64_t(threadIdx.x), end, g, TwoSums{0, 0},
        [&](int64_t j) {
          const T gj = weight ? dy[base + j] * weight[j] : dy[base + j];
          return TwoSums{double(gj), double(gj) * double((x[base + j] - mu) * rs)};
        },
        SumBoth{});
    s = group_reduce(s, SumBoth{}, ssum);
    const T a = T(s.a / double(cols)), b = T(s.b / double(cols));
    for (int64_t j = threadIdx.x; j < end; j += g) {
      const T gj = weight ? dy[base + j] * weight[j] : dy[base + j];
      dx[base + j] = rs * (gj - a - (x[base + j] - mu) * rs * b);
    }
  }
}

constexpr int kColumnTile = 32;
constexpr int kRowSplit = kThreads / kColumnTile;

template <class T>
__global__ void __launch_bounds__(kThreads)
    layer_norm_backward_params_kernel(const T* dy, const T* x, const T* mean, const T* rstd, T* dw, T* db, int64_t rows,
                                      int64_t cols) {
  __shared__ TwoSums part[kRowSplit][kColumnTile];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t tiles = (cols + kColumnTile - 1) / kColumnTile;
  for (int64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const int64_t k = tile * kColumnTile + tx;
    TwoSums acc{0, 0};
    if (k < cols) {
      for (int64_t r = ty; r < rows; r += kRowSplit) {
        const double d = double(dy[r * cols + k]);
        acc.a += d * double((x[r * cols + k] - mean[r]) * rstd[r]);
        acc.b += d;
      }
    }
    part[ty][tx] = acc;
    __syncthreads();
    if (ty == 0 && k < cols) {
      TwoSums total = part[0][tx];
      for (int i = 1; i < kRowSplit; ++i) total = SumBoth{}(total, part[i][tx]);
      if (dw) dw[k] = T(total.a);
      if (db) db[k] = T(total.b);
    }
    __syncthreads();
  }
}

}  // namespace

template <class T>
void layer_norm(const T* x, const T* weight, const T* bias, T* y, T* mean, T* rstd, int64_t rows, int64_t cols,
                double eps, Stream stream) {
  if (rows <= 0 || cols <= 0) return;
  const int g = row_group(cols);
  layer_norm_kernel<T><<<grid_for(rows, kThreads / g), dim3(g, kThreads / g), 0, stream>>>(x, weight, bias, y, mean,
                                                                                           rstd, rows, cols, eps);
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
void layer_norm_backward(const T* grad_y, const T* x, const T* weight, const T* mean, const T* rstd, T* grad_x,
                         T* grad_weight, T* grad_bias, int64_t rows, int64_t cols, Stream stream) {
  if (cols <= 0) return;
  if (grad_x && rows > 0) {
    const int g = row_group(cols);
    layer_norm_backward_input_kernel<T><<<grid_for(rows, kThreads / g), dim3(g, kThreads / g), 0, stream>>>(
        grad_y, x, weight, mean, rstd, grad_x, rows, cols);
    BRAID_CUDA_CHECK_LAUNCH();
  }
  if (grad_weight || grad_bias) {
    layer_norm_backward_params_kernel<T><<<grid_for(cols, kColumnTile), dim3(kColumnTile, kRowSplit), 0, stream>>>(
        grad_y, x, mean, rstd, grad_weight, grad_bias, rows, cols);
    BRAID_CUDA_CHECK_LAUNCH();
  }
}

#define BRAID_INSTANTIATE(T)                                                                                           \
  template void layer_norm<T>(const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, double, Stream);             \
  template void layer_norm_backward<T>(const T*, const T*, const T*, const T*, const T*, T*, T*, T*, int64_t, int64_t, \
                                       Stream);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cuda
