// Private helpers of the CUDA kernels in kernels/cuda: launch geometry, fast 32-bit division for index
// decomposition, vector types for 16-byte loads, warp/block combines, and stream-ordered scratch memory.
// Not installed; included only by the .cu files next to it.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <mutex>

#include "braid/kernels/cuda/check.h"
#include "braid/kernels/cuda/kernels.h"

namespace braid::kernels::cuda::detail {

constexpr int kThreads = 256;  // threads per block of the element-wise and reduction kernels
constexpr int kMaxDevices = 64;

// Per-device attributes, read once (cudaDeviceGetAttribute does not synchronise, but is not free either).
struct DeviceInfo {
  int sm_count;
  bool memory_pools;  // cudaMallocAsync is available
};

inline const DeviceInfo& device_info() {
  static DeviceInfo info[kMaxDevices];
  static std::once_flag once[kMaxDevices];
  int dev = 0;
  BRAID_CUDA_CHECK(cudaGetDevice(&dev));
  BRAID_CHECK(dev >= 0 && dev < kMaxDevices, "braid CUDA kernels: device ordinal ", dev, " is not supported");
  std::call_once(once[dev], [dev] {
    int sms = 0, pools = 0;
    BRAID_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
    BRAID_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, dev));
    info[dev] = DeviceInfo{std::max(sms, 1), pools != 0};
  });
  return info[dev];
}

// Blocks for a grid-stride loop over `items` work items of `per_block` items each: enough to fill the GPU a few
// times over, never more than the work needs.
inline unsigned grid_for(int64_t items, int64_t per_block) {
  const int64_t cap = int64_t(device_info().sm_count) * 32;
  const int64_t blocks = (items + per_block - 1) / per_block;
  return unsigned(std::max<int64_t>(1, std::min(blocks, cap)));
}

inline int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

inline int pow2_ceil(int64_t v) {
  int p = 1;
  while (p < v && p < (1 << 30)) p <<= 1;
  return p;
}

// n / d and n % d for n < 2^31 with a multiply-high instead of a division (Granlund-Montgomery, as PyTorch's
// IntDivider): the decomposition of a linear index into coordinates is the hot part of a strided kernel.
struct FastDivmod {
  uint32_t divisor = 1, magic = 1, shift = 0;
  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    for (shift = 0; shift < 32; ++shift)
      if ((uint32_t(1) << shift) >= d) break;
    const uint64_t one = 1;
    magic = uint32_t(((one << 32) * ((one << shift) - d)) / d + 1);
  }
  __device__ __forceinline__ uint32_t div(uint32_t n) const { return (__umulhi(n, magic) + n) >> shift; }
};

// Byte offsets of the N operands of a Loop<N> at a linear index (the last loop dimension varies fastest).
// Dimensions are stored innermost first. 32-bit division when the whole loop has fewer than 2^31 elements.
template <int N>
struct StridedOffsets {
  int ndim = 0;
  bool use32 = true;
  FastDivmod div32[kMaxDims];
  int64_t sizes[kMaxDims] = {};
  int64_t strides[kMaxDims][N] = {};

  StridedOffsets() = default;
  explicit StridedOffsets(const Loop<N>& L) : ndim(L.ndim), use32(L.numel() <= INT32_MAX) {
    for (int d = 0; d < ndim; ++d) {
      const int src = ndim - 1 - d;
      sizes[d] = L.sizes[src];
      if (use32) div32[d] = FastDivmod(uint32_t(L.sizes[src]));
      for (int k = 0; k < N; ++k) strides[d][k] = L.strides[k][src];
    }
  }

  __device__ __forceinline__ void get(int64_t linear, int64_t (&off)[N]) const {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] = 0;
    if (use32) {
      uint32_t idx = uint32_t(linear);
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == ndim) break;
        const uint32_t q = div32[d].div(idx);
        const int64_t r = int64_t(idx - q * div32[d].divisor);
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += r * strides[d][k];
        idx = q;
      }
    } else {
      int64_t idx = linear;
#pragma unroll
      for (int d = 0; d < kMaxDims; ++d) {
        if (d == ndim) break;
        const int64_t q = idx / sizes[d];
        const int64_t r = idx - q * sizes[d];
#pragma unroll
        for (int k = 0; k < N; ++k) off[k] += r * strides[d][k];
        idx = q;
      }
    }
  }
};

// i / d and i % d over a flat index space of `total` elements (32-bit fast path when total < 2^31).
struct RowCol {
  bool use32;
  FastDivmod div32;
  int64_t d;
  RowCol(int64_t total, int64_t divisor)
      : use32(total <= INT32_MAX), div32(use32 ? FastDivmod(uint32_t(divisor)) : FastDivmod()), d(divisor) {}
  __device__ __forceinline__ void get(int64_t i, int64_t& q, int64_t& r) const {
    if (use32) {
      const uint32_t qq = div32.div(uint32_t(i));
      q = qq;
      r = int64_t(uint32_t(i) - qq * div32.divisor);
    } else {
      q = i / d;
      r = i - q * d;
    }
  }
};

// V elements loaded or stored with one instruction (16 bytes for V * sizeof(T) == 16).
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

inline bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

__device__ __forceinline__ int64_t global_thread() { return int64_t(blockIdx.x) * blockDim.x + threadIdx.x; }
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

// __shfl_xor_sync for any trivially copyable value (a value-index pair as well as a double).
template <class A>
__device__ __forceinline__ A shfl_xor(A v, int mask) {
  static_assert(sizeof(A) % sizeof(int) == 0, "shfl_xor: value size must be a multiple of 4 bytes");
  constexpr int W = sizeof(A) / sizeof(int);
  int words[W];
  memcpy(words, &v, sizeof(A));
#pragma unroll
  for (int i = 0; i < W; ++i) words[i] = __shfl_xor_sync(0xffffffffu, words[i], mask);
  A r;
  memcpy(&r, words, sizeof(A));
  return r;
}

// Combines v over the blockDim.x threads that share threadIdx.y (blockDim.x a power of two, the block a whole
// number of warps); every one of them gets the result. `comb` must be commutative, so that all lanes of the
// butterfly end with the same value. smem: blockDim.x * blockDim.y / 32 elements. All threads of the block must
// call it (it synchronises when blockDim.x > 32).
template <class A, class Comb>
__device__ __forceinline__ A group_reduce(A v, Comb comb, A* smem) {
  const int g = blockDim.x;
#pragma unroll
  for (int off = 16; off > 0; off >>= 1)
    if (off < g) v = comb(v, shfl_xor(v, off));
  if (g > 32) {
    const int warps = g / 32;
    A* mine = smem + threadIdx.y * warps;
    if (threadIdx.x % 32 == 0) mine[threadIdx.x / 32] = v;
    __syncthreads();
    v = mine[0];
    for (int i = 1; i < warps; ++i) v = comb(v, mine[i]);
    __syncthreads();
  }
  return v;
}

// Folds load(j) for j = begin, begin + step, ... < end into acc, four loads in flight at a time.
template <class A, class Load, class Comb>
__device__ __forceinline__ A strided_fold(int64_t begin, int64_t end, int64_t step, A acc, Load load, Comb comb) {
  int64_t j = begin;
  for (; j + 3 * step < end; j += 4 * step) {
    const A a0 = load(j), a1 = load(j + step), a2 = load(j + 2 * step), a3 = load(j + 3 * step);
    acc = comb(acc, comb(comb(a0, a1), comb(a2, a3)));
  }
  for (; j < end; j += step) acc = comb(acc, load(j));
  return acc;
}

// Threads per row (a power of two) for kernels that give each contiguous row of `len` elements to a group of
// threads, with kThreads / group rows per block.
inline int row_group(int64_t len) {
  if (len <= 32) return pow2_ceil(std::max<int64_t>(len, 1));
  if (len <= 1024) return 32;
  if (len <= 4096) return 128;
  return kThreads;
}

// Device memory for the lifetime of one launcher, stream-ordered (cudaMallocAsync / cudaFreeAsync): no
// synchronisation, and freed on the stream even when a launch in between throws.
class StreamScratch {
 public:
  StreamScratch(size_t bytes, Stream stream) : stream_(stream) {
    BRAID_CUDA_CHECK(cudaMallocAsync(&ptr_, bytes, stream_));
  }
  ~StreamScratch() {
    if (ptr_) (void)cudaFreeAsync(ptr_, stream_);
  }
  StreamScratch(const StreamScratch&) = delete;
  StreamScratch& operator=(const StreamScratch&) = delete;
  void* get() const { return ptr_; }

 private:
  void* ptr_ = nullptr;
  Stream stream_;
};

}  // namespace braid::kernels::cuda::detail
