// The CPU caching allocator's controls, the twin of cuda.h's memory API. Freed CPU tensors of at least
// kMinCachedBytes are kept for the next allocation of the same rounded size instead of going back to the C library
// (which returns large blocks to the system, so that a training step would fault in freshly zeroed pages for every
// activation). Smaller ones go straight to malloc/free, whose bins already recycle them. Under the sanitizers the
// cache is off, so that AddressSanitizer still sees every use after free.
#pragma once

#include <cstddef>
#include <cstdint>

namespace braid::cpu {

inline constexpr size_t kMinCachedBytes = size_t(64) << 10;

// Counters for the blocks of at least kMinCachedBytes (smaller ones are not counted).
struct MemoryStats {
  int64_t malloc_calls = 0;  // aligned_alloc calls so far (a steady training step adds none)
  int64_t bytes_in_use = 0;  // handed out to live tensors
  int64_t bytes_cached = 0;  // freed by tensors, kept for reuse
};
MemoryStats memory_stats();
// Returns cached blocks to the C library.
void empty_cache();
// The most bytes the cache keeps: 1 GiB, or BRAID_CPU_CACHE_BYTES from the environment; 0 (always under the
// sanitizers) turns caching off. A block freed while the cache is full is released at once.
size_t cache_limit();
// Sets the limit (ignored under the sanitizers, where it stays 0) and releases cached blocks beyond it.
void set_cache_limit(size_t bytes);

}  // namespace braid::cpu
