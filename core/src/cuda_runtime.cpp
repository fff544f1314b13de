#include "braid/core/cuda.h"

#if BRAID_WITH_CUDA

#include <atomic>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "braid/kernels/cuda/check.h"
#include "cuda_runtime.h"
#include "storage_owner.h"

namespace braid::cuda {

namespace detail {

namespace {

// One per device, created on first use and kept for the life of the process (destroying CUDA objects during
// static destruction races the driver's own teardown).
struct DeviceState {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  std::mutex mutex;
  // Caching allocator: blocks by rounded size. Every op of the device runs on its one stream, so a block freed by
  // a tensor can be handed to the next allocation at once: stream order puts the new user's kernels after the
  // old user's.
  std::map<size_t, std::vector<void*>> free_blocks;
  std::map<void*, size_t> block_size;
  MemoryStats stats;
};

std::atomic<bool> g_poison{false};
std::mutex g_states_mutex;
// Never destroyed: a tensor released during static destruction must still find its device's state.
std::vector<DeviceState*>& g_states = *new std::vector<DeviceState*>();

void check_device_index(int index) {
  int n = device_count();
  BRAID_CHECK(index >= 0 && index < n, "cuda:", index, " is not available: ", n, " CUDA device",
              n == 1 ? " is" : "s are", " visible", n == 0 ? " (no GPU or no driver)" : "");
}

DeviceState& state(int index) {
  std::lock_guard<std::mutex> lock(g_states_mutex);
  if (g_states.empty()) {
    check_device_index(0);
    g_states.resize(size_t(device_count()), nullptr);
  }
  check_device_index(index);
  DeviceState*& s = g_states[size_t(index)];
  if (!s) {
    auto fresh = std::make_unique<DeviceState>();
    BRAID_CUDA_CHECK(cudaSetDevice(index));
    BRAID_CUDA_CHECK(cudaStreamCreateWithFlags(&fresh->stream, cudaStreamNonBlocking));
    BRAID_CUBLAS_CHECK(cublasCreate(&fresh->blas));
    BRAID_CUBLAS_CHECK(cublasSetStream(fresh->blas, fresh->stream));
    // Some kernels take short-lived scratch with cudaMallocAsync; keep the pool's memory mapped between steps
    // instead of returning it to the driver at every synchronisation.
    int pools = 0;
    BRAID_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, index));
    if (pools) {
      cudaMemPool_t pool;
      BRAID_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, index));
      uint64_t keep = UINT64_MAX;
      BRAID_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    }
    s = fresh.release();
  }
  return *s;
}

size_t round_size(size_t n) {
  if (n < (size_t(1) << 20)) return (std::max<size_t>(n, 1) + 511) / 512 * 512;
  return (n + (size_t(2) << 20) - 1) / (size_t(2) << 20) * (size_t(2) << 20);
}

void release(int index, void* p) {
  DeviceState& s = state(index);
  std::lock_guard<std::mutex> lock(s.mutex);
  size_t size = s.block_size.at(p);
  s.free_blocks[size].push_back(p);
  s.stats.bytes_in_use -= int64_t(size);
  s.stats.bytes_cached += int64_t(size);
}

void free_cached(DeviceState& s) {
  for (auto& [size, blocks] : s.free_blocks) {
    for (void* p : blocks) {
      cudaFree(p);
      s.block_size.erase(p);
      s.stats.bytes_cached -= int64_t(size);
    }
  }
  s.free_blocks.clear();
}

}  // namespace

kernels::cuda::Stream stream(Device device) {
  DeviceState& s = state(device.index);
  BRAID_CUDA_CHECK(cudaSetDevice(device.index));
  return s.stream;
}

kernels::cuda::BlasHandle blas(Device device) {
  DeviceState& s = state(device.index);
  BRAID_CUDA_CHECK(cudaSetDevice(device.index));
  return s.blas;
}

Storage allocate(size_t nbytes, Device device) {
  DeviceState& s = state(device.index);
  size_t size = round_size(nbytes);
  void* p = nullptr;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.free_blocks.find(size);
    if (it != s.free_blocks.end() && !it->second.empty()) {
      p = it->second.back();
      it->second.pop_back();
      s.stats.bytes_cached -= int64_t(size);
      BRAID_CUDA_CHECK(cudaSetDevice(device.index));
    } else {
      BRAID_CUDA_CHECK(cudaSetDevice(device.index));
      cudaError_t err = cudaMalloc(&p, size);
      if (err == cudaErrorMemoryAllocation) {  // give the cache back and try once more
        cudaGetLastError();
        BRAID_CUDA_CHECK(cudaStreamSynchronize(s.stream));
        free_cached(s);
        err = cudaMalloc(&p, size);
      }
      if (err != cudaSuccess) {
        cudaGetLastError();
        BRAID_FAIL("cudaMalloc of ", size, " bytes on ", device, " failed: ", cudaGetErrorString(err), " (",
                   s.stats.bytes_in_use, " bytes in use by tensors)");
      }
      ++s.stats.malloc_calls;
      s.block_size[p] = size;
    }
    s.stats.bytes_in_use += int64_t(size);
  }
  if (g_poison.load()) BRAID_CUDA_CHECK(cudaMemsetAsync(p, 0xFF, size, s.stream));
  int index = device.index;
  return braid::detail::owned_storage(p, nbytes, device, [index](void* q) { release(index, q); });
}

void copy_bytes(void* dst, Device dst_device, const void* src, Device src_device, size_t nbytes) {
  if (nbytes == 0) return;
  if (dst_device.is_cuda() && src_device.is_cuda() && dst_device.index != src_device.index) {
    // Both devices' queued work must be done before and the copy finished after.
    BRAID_CUDA_CHECK(cudaStreamSynchronize(stream(src_device)));
    cudaStream_t s = stream(dst_device);
    BRAID_CUDA_CHECK(cudaMemcpyPeerAsync(dst, dst_device.index, src, src_device.index, nbytes, s));
    BRAID_CUDA_CHECK(cudaStreamSynchronize(s));
    return;
  }
  Device d = dst_device.is_cuda() ? dst_device : src_device;
  cudaStream_t s = stream(d);
  cudaMemcpyKind kind = dst_device.is_cuda() ? (src_device.is_cuda() ? cudaMemcpyDeviceToDevice
                                                                        : cudaMemcpyHostToDevice)
                                             : cudaMemcpyDeviceToHost;
  BRAID_CUDA_CHECK(cudaMemcpyAsync(dst, src, nbytes, kind, s));
  // Host memory may be freed or read as soon as we return; device-to-device stays in stream order.
  if (kind != cudaMemcpyDeviceToDevice) BRAID_CUDA_CHECK(cudaStreamSynchronize(s));
}

}  // namespace detail

bool is_available() { return device_count() > 0; }

int device_count() {
  static const int count = [] {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
      cudaGetLastError();  // no driver or no device: a CPU-only run
      return 0;
    }
    return n;
  }();
  return count;
}

void synchronize(int device) {
  if (!is_available()) return;
  int first = device < 0 ? 0 : device, last = device < 0 ? device_count() - 1 : device;
  for (int i = first; i <= last; ++i) BRAID_CUDA_CHECK(cudaStreamSynchronize(detail::stream(Device::cuda(i))));
}

void* current_stream(int device) { return detail::stream(Device::cuda(device)); }

MemoryStats memory_stats(int device) {
  if (!is_available()) return {};
  auto& s = detail::state(device);
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.stats;
}

void set_poison_allocations(bool on) { detail::g_poison = on; }

void empty_cache() {
  for (int i = 0; i < device_count(); ++i) {
    auto& s = detail::state(i);
    BRAID_CUDA_CHECK(cudaStreamSynchronize(s.stream));
    std::lock_guard<std::mutex> lock(s.mutex);
    detail::free_cached(s);
    int pools = 0;
    BRAID_CUDA_CHECK(cudaDeviceGetAttribute(&pools, cudaDevAttrMemoryPoolsSupported, i));
    if (pools) {  // kernels' cudaMallocAsync scratch
      cudaMemPool_t pool;
      BRAID_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, i));
      BRAID_CUDA_CHECK(cudaMemPoolTrimTo(pool, 0));
    }
  }
}

}  // namespace braid::cuda

#else  // CPU-only build

#include "braid/kernels/error.h"

namespace braid::cuda {
bool is_available() { return false; }
int device_count() { return 0; }
void synchronize(int) {}
MemoryStats memory_stats(int) { return {}; }
void empty_cache() {}
void set_poison_allocations(bool) {}
void* current_stream(int device) {
  BRAID_FAIL("cuda::current_stream(", device, "): this build of Braid has no CUDA backend");
}
}  // namespace braid::cuda

#endif
