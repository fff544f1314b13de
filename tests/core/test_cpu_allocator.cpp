// The CPU caching allocator: freed blocks of a cached size come back for the next allocation of that size, sizes do
// not mix, the cache stays within its limit, empty_cache() releases it, and threads can share it.
#include <gtest/gtest.h>

#include <cstdint>
#include <thread>
#include <vector>

#include "braid/core/core.h"
#include "braid/core/cpu.h"

using namespace braid;

namespace {

constexpr size_t kBlock = size_t(256) << 10;
constexpr size_t kMiB = size_t(1) << 20;

// Gives each test a known limit and an empty cache, and puts the old limit back afterwards.
class CpuAllocator : public ::testing::Test {
 protected:
  void SetUp() override {
    old_limit_ = cpu::cache_limit();
    cpu::set_cache_limit(64 * kMiB);
    cpu::empty_cache();
    if (cpu::cache_limit() == 0) GTEST_SKIP() << "the CPU cache is off in sanitizer builds";
    in_use_ = cpu::memory_stats().bytes_in_use;  // tensors other tests of the process still hold
  }
  int64_t in_use() const { return cpu::memory_stats().bytes_in_use - in_use_; }
  void TearDown() override {
    cpu::empty_cache();
    cpu::set_cache_limit(old_limit_);
  }
  size_t old_limit_ = 0;
  int64_t in_use_ = 0;
};

void* allocate_and_free(size_t nbytes) { return Storage::allocate(nbytes, Device::cpu()).ptr.get(); }

}  // namespace

TEST_F(CpuAllocator, FreedBlockIsReusedForTheSameRoundedSize) {
  void* first = allocate_and_free(kBlock);
  EXPECT_EQ(cpu::memory_stats().bytes_cached, int64_t(kBlock));
  int64_t calls = cpu::memory_stats().malloc_calls;
  Storage again = Storage::allocate(kBlock - 10, Device::cpu());  // rounds up to kBlock
  EXPECT_EQ(again.ptr.get(), first);
  EXPECT_EQ(cpu::memory_stats().malloc_calls, calls);
  EXPECT_EQ(cpu::memory_stats().bytes_cached, 0);

  void* huge = allocate_and_free(3 * kMiB);  // rounds up to 4 MiB
  Storage huge_again = Storage::allocate(4 * kMiB, Device::cpu());
  EXPECT_EQ(huge_again.ptr.get(), huge);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(huge) % (2 * kMiB), 0u);
}

TEST_F(CpuAllocator, DifferentSizesDoNotMix) {
  void* small = allocate_and_free(kBlock);
  int64_t calls = cpu::memory_stats().malloc_calls;
  Storage bigger = Storage::allocate(2 * kBlock, Device::cpu());
  EXPECT_NE(bigger.ptr.get(), small);
  EXPECT_EQ(cpu::memory_stats().malloc_calls, calls + 1);
  EXPECT_EQ(cpu::memory_stats().bytes_cached, int64_t(kBlock));
  EXPECT_EQ(in_use(), int64_t(2 * kBlock));
}

TEST_F(CpuAllocator, SmallBlocksAreNotCached) {
  allocate_and_free(cpu::kMinCachedBytes - 64);
  EXPECT_EQ(cpu::memory_stats().bytes_cached, 0);
  EXPECT_EQ(in_use(), 0);
}

TEST_F(CpuAllocator, CacheStaysWithinItsLimit) {
  cpu::set_cache_limit(3 * kBlock);
  {
    std::vector<Storage> live;
    for (int i = 0; i < 5; ++i) live.push_back(Storage::allocate(kBlock, Device::cpu()));
    EXPECT_EQ(in_use(), int64_t(5 * kBlock));
  }
  EXPECT_EQ(cpu::memory_stats().bytes_cached, int64_t(3 * kBlock));
  EXPECT_EQ(in_use(), 0);
  cpu::set_cache_limit(kBlock);  // lowering the limit releases what is beyond it
  EXPECT_EQ(cpu::memory_stats().bytes_cached, int64_t(kBlock));
  cpu::set_cache_limit(0);  // off: nothing is kept
  allocate_and_free(kBlock);
  EXPECT_EQ(cpu::memory_stats().bytes_cached, 0);
}

TEST_F(CpuAllocator, EmptyCacheReleasesEverything) {
  allocate_and_free(kBlock);
  allocate_and_free(4 * kMiB);
  EXPECT_EQ(cpu::memory_stats().bytes_cached, int64_t(kBlock + 4 * kMiB));
  cpu::empty_cache();
  EXPECT_EQ(cpu::memory_stats().bytes_cached, 0);
  int64_t calls = cpu::memory_stats().malloc_calls;
  allocate_and_free(kBlock);
  EXPECT_EQ(cpu::memory_stats().malloc_calls, calls + 1);
}

TEST_F(CpuAllocator, ThreadsShareTheCacheSafely) {
  const size_t sizes[] = {kBlock, 2 * kBlock, 3 * kMiB};
  std::vector<std::thread> threads;
  std::vector<int> bad(4, 0);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int it = 0; it < 100; ++it) {
        std::vector<Storage> live;
        for (size_t s : sizes) {
          live.push_back(Storage::allocate(s, Device::cpu()));
          auto* words = static_cast<int64_t*>(live.back().ptr.get());
          for (size_t i = 0; i < s / sizeof(int64_t); i += 512) words[i] = t * 1000000 + it * 1000 + int64_t(i % 997);
        }
        std::this_thread::yield();
        for (const Storage& st : live) {
          auto* words = static_cast<const int64_t*>(st.ptr.get());
          for (size_t i = 0; i < st.nbytes / sizeof(int64_t); i += 512)
            bad[size_t(t)] += words[i] != t * 1000000 + it * 1000 + int64_t(i % 997);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad, std::vector<int>(4, 0));
  EXPECT_EQ(in_use(), 0);
  EXPECT_LE(cpu::memory_stats().bytes_cached, int64_t(64 * kMiB));
  EXPECT_GT(cpu::memory_stats().bytes_cached, 0);
}
