// The CUDA devices as Braid sees them. These work in every build: without the CUDA backend (or without a GPU)
// is_available() is false and device_count() is 0.
#pragma once

#include <cstddef>
#include <cstdint>

namespace braid::cuda {

// True when Braid was built with CUDA and at least one device is visible.
bool is_available();
int device_count();
// Waits until all work queued on `device`'s stream (every device's when -1) has finished.
void synchronize(int device = -1);

// The stream all of `device`'s ops run on (a cudaStream_t), for code that orders its own CUDA work after
// Braid's, such as the NCCL process group. Throws without CUDA or without that device.
void* current_stream(int device = 0);

// The caching allocator's counters for one device: how often it had to call cudaMalloc, and the bytes it holds.
struct MemoryStats {
  int64_t malloc_calls = 0;     // cudaMalloc calls so far (a steady training step adds none)
  int64_t bytes_in_use = 0;     // handed out to live tensors
  int64_t bytes_cached = 0;     // freed by tensors, kept for reuse
};
MemoryStats memory_stats(int device = 0);
// Returns cached blocks to the driver.
void empty_cache();
// When on, every CUDA allocation is filled with 0xFF bytes (NaN for floats, -1 for int64) before use, so a kernel
// that leaves an output element unwritten shows up in tests.
void set_poison_allocations(bool on);

}  // namespace braid::cuda
