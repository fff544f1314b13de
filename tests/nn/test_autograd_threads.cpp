// Several threads running backward passes into one shared leaf at the same time: every contribution lands in
// .grad exactly once (AccumulateGrad sums under the leaf's lock).
#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "braid/braid.h"

using namespace braid;

TEST(AutogradThreads, ConcurrentBackwardIntoASharedLeafSumsEveryContribution) {
  constexpr int64_t kSize = 1 << 14;
  constexpr int kIterations = 200;
  constexpr int kThreads = 2;
  for (int trial = 0; trial < 3; ++trial) {
    SCOPED_TRACE("trial " + std::to_string(trial));
    Tensor w = ones({kSize}, DType::Float64).requires_grad_();
    int post_hook_calls = 0;
    std::atomic<int> hook_calls{0};
    w.register_post_accumulate_grad_hook([&](const Tensor&) { hook_calls.fetch_add(1); });
    std::atomic<bool> go{false};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        Tensor scale = full({kSize}, double(t + 1), DType::Float64);
        while (!go.load()) std::this_thread::yield();
        for (int i = 0; i < kIterations; ++i) sum(w * scale).backward();  // d/dw = t + 1
      });
    }
    go.store(true);
    for (auto& th : threads) th.join();
    post_hook_calls = hook_calls.load();
    EXPECT_EQ(post_hook_calls, kThreads * kIterations);
    // Integers well inside float64's exact range: any lost or doubled update shows.
    double expected = 0;
    for (int t = 0; t < kThreads; ++t) expected += double(kIterations) * (t + 1);
    std::vector<double> g = w.grad().to_vector<double>();
    ASSERT_EQ(g.size(), size_t(kSize));
    int64_t wrong = 0;
    for (double v : g) wrong += v != expected;
    EXPECT_EQ(wrong, 0) << "first element " << g[0] << ", expected " << expected;
  }
}
