#include "cpu_allocator.h"

#include <sys/mman.h>

#include <algorithm>
#include <atomic>
#include <charconv>
#include <cstring>
#include <cstdlib>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "braid/core/cpu.h"
#include "storage_owner.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define BRAID_CPU_CACHE_OFF 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define BRAID_CPU_CACHE_OFF 1
#endif
#endif

namespace braid::cpu {

namespace {

constexpr size_t kHugePage = size_t(2) << 20;

// A bad value is an error even where the cache is off (sanitizer builds), so the same environment fails alike.
size_t initial_limit() {
  size_t bytes = size_t(1) << 30;
  const char* env = std::getenv("BRAID_CPU_CACHE_BYTES");
  if (env && *env) {
    // Digits only: strtoull would read "abc" as 0 (no cache) and "-1" as 2^64 - 1.
    const char* end = env + std::strlen(env);
    const auto [stop, error] = std::from_chars(env, end, bytes);
    BRAID_CHECK(error == std::errc() && stop == end,
                "BRAID_CPU_CACHE_BYTES must be a number of bytes (0 turns the CPU cache off), got '", env, "'");
  }
#ifdef BRAID_CPU_CACHE_OFF
  return 0;
#else
  return bytes;
#endif
}

struct State {
  std::mutex mutex;
  std::unordered_map<size_t, std::vector<void*>> free_blocks;  // by rounded size
  std::atomic<size_t> limit{initial_limit()};  // read without the mutex by every allocation
  MemoryStats stats;
};

// Never destroyed: a tensor released during static destruction must still find the cache.
State& state() {
  static State* s = new State();
  return *s;
}

// Frees cached blocks until at most `limit` bytes remain. Caller holds the mutex.
void trim_to(State& s, size_t limit) {
  for (auto it = s.free_blocks.begin(); it != s.free_blocks.end() && size_t(s.stats.bytes_cached) > limit;) {
    auto& blocks = it->second;
    while (!blocks.empty() && size_t(s.stats.bytes_cached) > limit) {
      std::free(blocks.back());
      blocks.pop_back();
      s.stats.bytes_cached -= int64_t(it->first);
    }
    it = blocks.empty() ? s.free_blocks.erase(it) : std::next(it);
  }
}

// 64-byte aligned (a cache line, and AVX-512's vector). From 2 MiB up (or when asked), aligned to 2 MiB and
// marked for transparent huge pages (Debian's default THP mode is madvise): fewer page faults and TLB misses, and
// MPI's single-copy transfers pin a few huge pages instead of 512 small ones per 2 MiB (between two ranks here,
// 16-64 MiB all-reduces ran 1.15-1.6x faster and a 1 MiB one 2.3x). Smaller tensors are not rounded up by
// default: a 2 MiB page for every 100 KiB activation would multiply the memory a model uses.
size_t round_size(size_t nbytes, bool huge_pages) {
  size_t rounded = (std::max<size_t>(nbytes, 1) + 63) / 64 * 64;
  if (rounded >= kHugePage || huge_pages) rounded = (rounded + kHugePage - 1) / kHugePage * kHugePage;
  return rounded;
}

void* system_allocate(size_t size) {
  if (size < kHugePage) return std::aligned_alloc(64, size);
  void* p = std::aligned_alloc(kHugePage, size);
  if (p) madvise(p, size, MADV_HUGEPAGE);
  return p;
}

void* cached_allocate(size_t size) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stats.bytes_in_use += int64_t(size);
    auto it = s.free_blocks.find(size);
    if (it != s.free_blocks.end() && !it->second.empty()) {
      void* p = it->second.back();
      it->second.pop_back();
      s.stats.bytes_cached -= int64_t(size);
      return p;
    }
    ++s.stats.malloc_calls;
  }
  void* p = system_allocate(size);
  if (!p) {  // give the cache back and try once more
    empty_cache();
    p = system_allocate(size);
  }
  if (!p) {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stats.bytes_in_use -= int64_t(size);
  }
  return p;
}

void release(void* p, size_t size) {
  State& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.stats.bytes_in_use -= int64_t(size);
    // The blocks already cached are the ones a steady loop reuses, so a full cache keeps them and drops this one.
    if (size_t(s.stats.bytes_cached) + size <= s.limit) {
      s.free_blocks[size].push_back(p);
      s.stats.bytes_cached += int64_t(size);
      return;
    }
  }
  std::free(p);
}

}  // namespace

MemoryStats memory_stats() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  return s.stats;
}

void empty_cache() {
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  trim_to(s, 0);
}

size_t cache_limit() { return state().limit.load(); }

void set_cache_limit([[maybe_unused]] size_t bytes) {
#ifndef BRAID_CPU_CACHE_OFF
  State& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  s.limit = bytes;
  trim_to(s, bytes);
#endif
}

namespace detail {

Storage allocate(size_t nbytes, bool huge_pages) {
  size_t size = round_size(nbytes, huge_pages);
  bool cached = size >= kMinCachedBytes && cache_limit() > 0;
  void* p = cached ? cached_allocate(size) : system_allocate(size);
  BRAID_CHECK(p, "Storage::allocate: out of memory allocating ", nbytes, " bytes");
  if (!cached) return braid::detail::owned_storage(p, nbytes, Device::cpu(), [](void* q) { std::free(q); });
  return braid::detail::owned_storage(p, nbytes, Device::cpu(), [size](void* q) { release(q, size); });
}

}  // namespace detail

}  // namespace braid::cpu
