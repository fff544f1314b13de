// CUDA reductions over the middle axis of a contiguous [outer, reduce, inner] block, softmax and the negative
// log-likelihood, with the semantics of kernels/cpu/reduce.cpp: floating-point sums accumulate in double, max/min
// propagate NaN, arg_reduce returns the first index of the extremum (the first NaN wins).
//
// Reductions: inner == 1 gives each contiguous row to a group of threads (a few lanes, a warp or a whole block,
// by row length) that combine through warp shuffles; inner > 1 gives a block a tile of columns, its threads
// reading along inner (coalesced) and combining across the reduced axis in shared memory. When that leaves the
// GPU mostly idle (few long rows or columns), the reduced axis is split over blocks that write partial results to
// stream-ordered scratch memory, and a second pass of the same kernel combines them in a fixed order, so results do
// not depend on timing.
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "braid/kernels/cuda/kernels.h"
#include "launch.cuh"

namespace braid::kernels::cuda {

namespace {

using namespace detail;

// ---- reducers: identity, the accumulator made from an element and its index, a commutative combine, and the
// ---- final value written out --------------------------------------------------------------------------------

template <class T>
struct SumReducer {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double, T>;
  using Out = T;
  __device__ __forceinline__ Acc identity() const { return Acc(0); }
  __device__ __forceinline__ Acc make(T x, int64_t) const { return Acc(x); }
  __device__ __forceinline__ Acc operator()(Acc a, Acc b) const { return a + b; }
  __device__ __forceinline__ Out finish(Acc a) const { return Out(a); }
};

template <class T>
__device__ __forceinline__ T lowest() {
  if constexpr (std::is_floating_point_v<T>)
    return -T(INFINITY);
  else
    return INT64_MIN;
}
template <class T>
__device__ __forceinline__ T highest() {
  if constexpr (std::is_floating_point_v<T>)
    return T(INFINITY);
  else
    return INT64_MAX;
}

// Max / min in the element type (exact, NaN propagating, as the CPU's combine).
template <class T, bool kMax>
struct ExtremumReducer {
  using Acc = T;
  using Out = T;
  __device__ __forceinline__ Acc identity() const { return kMax ? lowest<T>() : highest<T>(); }
  __device__ __forceinline__ Acc make(T x, int64_t) const { return x; }
  __device__ __forceinline__ Acc operator()(Acc a, Acc b) const { return ((kMax ? b > a : b < a) || b != b) ? b : a; }
  __device__ __forceinline__ Out finish(Acc a) const { return a; }
};

template <class T>
struct ValueIndex {
  T v;
  int64_t i;  // < 0: no element seen yet
};

// First index of the max / min; a NaN beats every number, and the first NaN beats later ones.
template <class T, bool kMax>
struct ArgReducer {
  using Acc = ValueIndex<T>;
  using Out = int64_t;
  __device__ __forceinline__ Acc identity() const { return Acc{T(0), -1}; }
  __device__ __forceinline__ Acc make(T x, int64_t j) const { return Acc{x, j}; }
  __device__ __forceinline__ Acc operator()(Acc a, Acc b) const {
    if (a.i < 0) return b;
    if (b.i < 0) return a;
    const bool a_nan = a.v != a.v, b_nan = b.v != b.v;
    if (a_nan || b_nan) {
      if (a_nan && b_nan) return a.i < b.i ? a : b;
      return a_nan ? a : b;
    }
    if (a.v == b.v) return a.i < b.i ? a : b;
    return (kMax ? b.v > a.v : b.v < a.v) ? b : a;
  }
  __device__ __forceinline__ Out finish(Acc a) const { return a.i < 0 ? 0 : a.i; }
};

// Inputs are elements of the tensor (made into accumulators with their index along the reduced axis) or partial
// results of a first pass; outputs are final values or partial results.
template <class R, class In>
__device__ __forceinline__ typename R::Acc to_acc(const R& r, In v, int64_t j) {
  if constexpr (std::is_same_v<In, typename R::Acc>)
    return v;
  else
    return r.make(v, j);
}
template <class R, class Out>
__device__ __forceinline__ void store_acc(const R& r, Out* out, int64_t i, typename R::Acc a) {
  if constexpr (std::is_same_v<Out, typename R::Acc>)
    out[i] = a;
  else
    out[i] = r.finish(a);
}

// inner == 1: rows of `len` elements, blockDim.x threads per row, blockDim.y rows per block. Split s
// (blockIdx.y) covers [s * chunk, (s + 1) * chunk) of every row and writes out[row * splits + s].
template <class R, class In, class Out>
__global__ void __launch_bounds__(kThreads)
    reduce_rows_kernel(const In* in, Out* out, int64_t rows, int64_t len, int64_t chunk, int64_t splits) {
  using Acc = typename R::Acc;
  __shared__ Acc smem[kThreads / 32];
  const R r;
  const int64_t s = blockIdx.y;
  const int64_t begin = s * chunk;
  const int64_t end = begin + chunk < len ? begin + chunk : len;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    Acc acc = r.identity();
    if (row < rows) {
      const In* p = in + row * len;
      acc = strided_fold(
          begin + threadIdx.x, end, blockDim.x, acc, [&](int64_t j) { return to_acc(r, p[j], j); }, r);
    }
    acc = group_reduce(acc, r, smem);
    if (row < rows && threadIdx.x == 0) store_acc(r, out, row * splits + s, acc);
  }
}

// inner > 1: a block reduces blockDim.x adjacent columns of one outer index, blockDim.y threads along the reduced
// axis. Split s covers [s * chunk, (s + 1) * chunk) and writes out[(o * splits + s) * inner + k].
template <class R, class In, class Out>
__global__ void __launch_bounds__(kThreads) reduce_cols_kernel(const In* in, Out* out, int64_t outer, int64_t len,
                                                               int64_t inner, int64_t chunk, int64_t splits) {
  using Acc = typename R::Acc;
  __shared__ Acc smem[kThreads];
  const R r;
  const int bx = blockDim.x, by = blockDim.y, tx = threadIdx.x, ty = threadIdx.y;
  const int64_t s = blockIdx.y;
  const int64_t begin = s * chunk;
  const int64_t end = begin + chunk < len ? begin + chunk : len;
  const int64_t tiles = (inner + bx - 1) / bx;
  for (int64_t t = blockIdx.x; t < outer * tiles; t += gridDim.x) {
    const int64_t o = t / tiles;
    const int64_t k = (t - o * tiles) * bx + tx;
    Acc acc = r.identity();
    if (k < inner) {
      const In* p = in + o * len * inner + k;
      acc = strided_fold(
          begin + ty, end, by, acc, [&](int64_t j) { return to_acc(r, p[j * inner], j); }, r);
    }
    smem[ty * bx + tx] = acc;
    __syncthreads();
    for (int step = by / 2; step > 0; step >>= 1) {
      if (ty < step) smem[ty * bx + tx] = r(smem[ty * bx + tx], smem[(ty + step) * bx + tx]);
      __syncthreads();
    }
    if (ty == 0 && k < inner) store_acc(r, out, (o * splits + s) * inner + k, smem[tx]);
    __syncthreads();
  }
}

constexpr int64_t kMinRowChunk = 2048;  // elements of a row per block before splitting is worth a second pass

template <class R, class T>
void run_reduce(const T* in, typename R::Out* out, int64_t outer, int64_t len, int64_t inner, Stream stream) {
  using Acc = typename R::Acc;
  using Out = typename R::Out;
  if (outer <= 0 || inner <= 0) return;
  const DeviceInfo& dev = device_info();
  const int64_t target = int64_t(dev.sm_count) * 4;  // blocks that keep every SM streaming

  if (inner == 1) {
    int g = row_group(len);
    int64_t blocks = ceil_div(outer, kThreads / g);
    int64_t splits = 1, chunk = len;
    if (dev.memory_pools && blocks * 2 <= target && len >= 2 * kMinRowChunk) {
      splits = std::min(ceil_div(target, blocks), ceil_div(len, kMinRowChunk));
      chunk = ceil_div(len, splits);
      splits = ceil_div(len, chunk);
      g = row_group(chunk);
    }
    const dim3 block(g, kThreads / g);
    if (splits == 1) {
      reduce_rows_kernel<R, T, Out><<<grid_for(outer, kThreads / g), block, 0, stream>>>(in, out, outer, len, len, 1);
      BRAID_CUDA_CHECK_LAUNCH();
      return;
    }
    StreamScratch scratch(size_t(outer * splits) * sizeof(Acc), stream);
    Acc* part = static_cast<Acc*>(scratch.get());
    reduce_rows_kernel<R, T, Acc><<<dim3(grid_for(outer, kThreads / g), unsigned(splits)), block, 0, stream>>>(
        in, part, outer, len, chunk, splits);
    BRAID_CUDA_CHECK_LAUNCH();
    const int g2 = row_group(splits);
    reduce_rows_kernel<R, Acc, Out>
        <<<grid_for(outer, kThreads / g2), dim3(g2, kThreads / g2), 0, stream>>>(part, out, outer, splits, splits, 1);
    BRAID_CUDA_CHECK_LAUNCH();
    return;
  }

  // Columns: up to 32 threads across inner (more when the reduced axis is short), the rest along it.
  auto shape_for = [](int64_t inner_, int64_t len_) {
    int bx = std::min(pow2_ceil(inner_), 32);
    const int by = std::min(kThreads / bx, pow2_ceil(std::max<int64_t>(len_, 1)));
    bx = std::min(kThreads / by, pow2_ceil(inner_));
    return dim3(bx, by);
  };
  dim3 block = shape_for(inner, len);
  const int64_t blocks = outer * ceil_div(inner, block.x);
  const int64_t min_chunk = int64_t(block.y) * 16;
  if (!(dev.memory_pools && blocks * 2 <= target && len >= 2 * min_chunk)) {
    reduce_cols_kernel<R, T, Out><<<grid_for(blocks, 1), block, 0, stream>>>(in, out, outer, len, inner, len, 1);
    BRAID_CUDA_CHECK_LAUNCH();
    return;
  }
  int64_t splits = std::min(ceil_div(target, blocks), ceil_div(len, min_chunk));
  const int64_t chunk = ceil_div(len, splits);
  splits = ceil_div(len, chunk);
  StreamScratch scratch(size_t(outer * splits * inner) * sizeof(Acc), stream);
  Acc* part = static_cast<Acc*>(scratch.get());
  reduce_cols_kernel<R, T, Acc>
      <<<dim3(grid_for(blocks, 1), unsigned(splits)), block, 0, stream>>>(in, part, outer, len, inner, chunk, splits);
  BRAID_CUDA_CHECK_LAUNCH();
  const dim3 block2 = shape_for(inner, splits);
  reduce_cols_kernel<R, Acc, Out><<<grid_for(outer * ceil_div(inner, block2.x), 1), block2, 0, stream>>>(
      part, out, outer, splits, inner, splits, 1);
  BRAID_CUDA_CHECK_LAUNCH();
}

// ---- softmax ------------------------------------------------------------------------------------------------

template <class T>
struct MaxOf {
  __device__ __forceinline__ T operator()(T a, T b) const { return (b > a || b != b) ? b : a; }
};
struct SumOf {
  __device__ __forceinline__ double operator()(double a, double b) const { return a + b; }
};

// inner == 1: blockDim.x threads per row of `dim` elements, blockDim.y rows per block. Max, then the sum of
// exp(x - max) in double, then the output: as the CPU's contiguous-row path. Log-softmax is (x - max) - log(sum),
// in that order (PyTorch's): folding max + log(sum) first rounds a small log(sum) to the spacing of floats near
// the max, which for logits in the hundreds is larger than the log-probabilities of the likeliest classes.
template <class T>
__global__ void __launch_bounds__(kThreads)
    softmax_rows_kernel(const T* in, T* out, int64_t rows, int64_t dim, bool log) {
  __shared__ T smax[kThreads / 32];
  __shared__ double ssum[kThreads / 32];
  const int64_t g = blockDim.x;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    const bool valid = row < rows;
    const T* x = in + (valid ? row : 0) * dim;
    T* y = out + (valid ? row : 0) * dim;
    const int64_t end = valid ? dim : 0;
    T m = strided_fold(
        int64_t(threadIdx.x), end, g, -T(INFINITY), [&](int64_t j) { return x[j]; }, MaxOf<T>{});
    m = group_reduce(m, MaxOf<T>{}, smax);
    double s = strided_fold(
        int64_t(threadIdx.x), end, g, 0.0, [&](int64_t j) { return double(std::exp(x[j] - m)); }, SumOf{});
    s = group_reduce(s, SumOf{}, ssum);
    if (log) {
      const T lse = T(std::log(s));
      for (int64_t j = threadIdx.x; j < end; j += g) y[j] = (x[j] - m) - lse;
    } else {
      const T inv = T(1.0 / s);
      for (int64_t j = threadIdx.x; j < end; j += g) y[j] = std::exp(x[j] - m) * inv;
    }
  }
}

// inner > 1: one thread per (outer, inner) column, reading along the reduced axis with stride inner (adjacent
// threads read adjacent columns). As the CPU's general path.
template <class T>
__global__ void __launch_bounds__(kThreads)
    softmax_cols_kernel(const T* in, T* out, int64_t columns, RowCol split, int64_t dim, int64_t inner, bool log) {
  for (int64_t c = global_thread(); c < columns; c += grid_stride()) {
    int64_t o, k;
    split.get(c, o, k);
    const T* x = in + o * dim * inner + k;
    T* y = out + o * dim * inner + k;
    T m = x[0];
    for (int64_t j = 1; j < dim; ++j) m = x[j * inner] > m ? x[j * inner] : m;
    double s = 0;
    if (log) {
      for (int64_t j = 0; j < dim; ++j) s += std::exp(double(x[j * inner] - m));
      const T lse = T(std::log(s));
      for (int64_t j = 0; j < dim; ++j) y[j * inner] = (x[j * inner] - m) - lse;
    } else {
      for (int64_t j = 0; j < dim; ++j) s += std::exp(x[j * inner] - m);
      const T inv = T(1.0 / s);
      for (int64_t j = 0; j < dim; ++j) y[j * inner] = std::exp(x[j * inner] - m) * inv;
    }
  }
}

// grad_in = g - exp(y) * sum(g) (log) or y * (g - sum(g * y)), sums in double.
template <class T>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_rows_kernel(const T* g, const T* y, T* gi, int64_t rows, int64_t dim, bool log) {
  __shared__ double ssum[kThreads / 32];
  const int64_t step = blockDim.x;
  for (int64_t first = int64_t(blockIdx.x) * blockDim.y; first < rows; first += int64_t(gridDim.x) * blockDim.y) {
    const int64_t row = first + threadIdx.y;
    const bool valid = row < rows;
    const int64_t base = (valid ? row : 0) * dim;
    const int64_t end = valid ? dim : 0;
    double s = strided_fold(
        int64_t(threadIdx.x), end, step, 0.0,
        [&](int64_t j) { return log ? double(g[base + j]) : double(g[base + j]) * y[base + j]; }, SumOf{});
    s = group_reduce(s, SumOf{}, ssum);
    if (log) {
      for (int64_t j = threadIdx.x; j < end; j += step) gi[base + j] = g[base + j] - std::exp(y[base + j]) * T(s);
    } else {
      for (int64_t j = threadIdx.x; j < end; j += step) gi[base + j] = y[base + j] * (g[base + j] - T(s));
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    softmax_backward_cols_kernel(const T* g, const T* y, T* gi, int64_t columns, RowCol split, int64_t dim,
                                 int64_t inner, bool log) {
  for (int64_t c = global_thread(); c < columns; c += grid_stride()) {
    int64_t o, k;
    split.get(c, o, k);
    const int64_t base = o * dim * inner + k;
    double s = 0;
    if (log) {
      for (int64_t j = 0; j < dim; ++j) s += g[base + j * inner];
      for (int64_t j = 0; j < dim; ++j)
        gi[base + j * inner] = g[base + j * inner] - std::exp(y[base + j * inner]) * T(s);
    } else {
      for (int64_t j = 0; j < dim; ++j) s += double(g[base + j * inner]) * y[base + j * inner];
      for (int64_t j = 0; j < dim; ++j) gi[base + j * inner] = y[base + j * inner] * (g[base + j * inner] - T(s));
    }
  }
}

// ---- negative log-likelihood ---------------------------------------------------------------------------------

template <class T>
__global__ void __launch_bounds__(kThreads)
    nll_forward_kernel(const T* lp, const int64_t* target, T* loss, int64_t* bad_target, int64_t n, int64_t c) {
  for (int64_t i = global_thread(); i < n; i += grid_stride()) {
    const int64_t t = target[i];
    if (t < 0 || t >= c) {
      atomicMin(reinterpret_cast<unsigned long long*>(bad_target), static_cast<unsigned long long>(i));
      loss[i] = T(0);
    } else {
      loss[i] = -lp[i * c + t];
    }
  }
}

template <class T>
__global__ void __launch_bounds__(kThreads)
    nll_backward_kernel(bool from_log_softmax, const T* lp, const int64_t* target, const T* grad_loss,
                        bool per_sample_grad, T scale, T* gi, int64_t total, RowCol split) {
  for (int64_t idx = global_thread(); idx < total; idx += grid_stride()) {
    int64_t i, j;
    split.get(idx, i, j);
    const T s = grad_loss[per_sample_grad ? i : 0] * scale;
    T v = from_log_softmax ? s * std::exp(lp[idx]) : T(0);
    if (j == target[i]) v -= s;
    gi[idx] = v;
  }
}

}  // namespace

template <class T>
void reduce(ReduceOp op, const T* in, T* out, int64_t outer, int64_t reduce, int64_t inner, Stream stream) {
  switch (op) {
    case ReduceOp::Sum:
      return run_reduce<SumReducer<T>>(in, out, outer, reduce, inner, stream);
    case ReduceOp::Max:
      return run_reduce<ExtremumReducer<T, true>>(in, out, outer, reduce, inner, stream);
    default:
      return run_reduce<ExtremumReducer<T, false>>(in, out, outer, reduce, inner, stream);
  }
}

template <class T>
void arg_reduce(bool max, const T* in, int64_t* out, int64_t outer, int64_t reduce, int64_t inner, Stream stream) {
  if (max)
    run_reduce<ArgReducer<T, true>>(in, out, outer, reduce, inner, stream);
  else
    run_reduce<ArgReducer<T, false>>(in, out, outer, reduce, inner, stream);
}

template <class T>
void softmax(bool log, const T* in, T* out, int64_t outer, int64_t dim, int64_t inner, Stream stream) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  if (inner == 1) {
    const int g = row_group(dim);
    softmax_rows_kernel<T>
        <<<grid_for(outer, kThreads / g), dim3(g, kThreads / g), 0, stream>>>(in, out, outer, dim, log);
  } else {
    const int64_t columns = outer * inner;
    softmax_cols_kernel<T><<<grid_for(columns, kThreads), kThreads, 0, stream>>>(
        in, out, columns, RowCol(columns, inner), dim, inner, log);
  }
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
void softmax_backward(bool log, const T* grad_out, const T* y, T* grad_in, int64_t outer, int64_t dim, int64_t inner,
                      Stream stream) {
  if (outer <= 0 || dim <= 0 || inner <= 0) return;
  if (inner == 1) {
    const int g = row_group(dim);
    softmax_backward_rows_kernel<T>
        <<<grid_for(outer, kThreads / g), dim3(g, kThreads / g), 0, stream>>>(grad_out, y, grad_in, outer, dim, log);
  } else {
    const int64_t columns = outer * inner;
    softmax_backward_cols_kernel<T><<<grid_for(columns, kThreads), kThreads, 0, stream>>>(
        grad_out, y, grad_in, columns, RowCol(columns, inner), dim, inner, log);
  }
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
void nll_forward(const T* log_probs, const int64_t* target, T* loss, int64_t* bad_target, int64_t n, int64_t c,
                 Stream stream) {
  if (n <= 0) return;
  nll_forward_kernel<T><<<grid_for(n, kThreads), kThreads, 0, stream>>>(log_probs, target, loss, bad_target, n, c);
  BRAID_CUDA_CHECK_LAUNCH();
}

template <class T>
void nll_backward(bool from_log_softmax, const T* log_probs, const int64_t* target, const T* grad_loss,
                  bool per_sample_grad, T scale, T* grad_in, int64_t n, int64_t c, Stream stream) {
  const int64_t total = n * c;
  if (n <= 0 || c <= 0) return;
  nll_backward_kernel<T><<<grid_for(total, kThreads), kThreads, 0, stream>>>(
      from_log_softmax, log_probs, target, grad_loss, per_sample_grad, scale, grad_in, total, RowCol(total, c));
  BRAID_CUDA_CHECK_LAUNCH();
}

#define BRAID_INSTANTIATE(T)                                                                          \
  template void softmax<T>(bool, const T*, T*, int64_t, int64_t, int64_t, Stream);                    \
  template void softmax_backward<T>(bool, const T*, const T*, T*, int64_t, int64_t, int64_t, Stream); \
  template void nll_forward<T>(const T*, const int64_t*, T*, int64_t*, int64_t, int64_t, Stream);     \
  template void nll_backward<T>(bool, const T*, const int64_t*, const T*, bool, T, T*, int64_t, int64_t, Stream);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
#undef BRAID_INSTANTIATE

#define BRAID_INSTANTIATE(T)                                                          \
  template void reduce<T>(ReduceOp, const T*, T*, int64_t, int64_t, int64_t, Stream); \
  template void arg_reduce<T>(bool, const T*, int64_t*, int64_t, int64_t, int64_t, Stream);
BRAID_INSTANTIATE(float)
BRAID_INSTANTIATE(double)
BRAID_INSTANTIATE(int64_t)
#undef BRAID_INSTANTIATE

}  // namespace braid::kernels::cuda
