// How far apart the machine's first two vCPUs are right now: the round trip of a cache line bounced between two
// threads pinned to cpu 0 and cpu 1 (port of peers/pingpong.cpp). On these VMs the host moves vCPUs between SMT
// siblings, one CCX and two CCDs (~50-80 ns near, ~320 ns far), which makes 2-thread timings bimodal; run_all.py
// records it next to every 2-thread run. Prints one JSON line with the best of 5 runs.
// usage: braid_core_distance [ITERS]   (default 200000)
#include <pthread.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <thread>

namespace {

alignas(64) std::atomic<int> flag{0};

void pin(int cpu) {
  cpu_set_t s;
  CPU_ZERO(&s);
  CPU_SET(cpu, &s);
  pthread_setaffinity_np(pthread_self(), sizeof s, &s);
}

}  // namespace

int main(int argc, char** argv) {
  long n = argc > 1 ? std::atol(argv[1]) : 200000;
  double best = 1e30;
  for (int rep = 0; rep < 5; ++rep) {
    flag = 0;
    std::thread other([&] {
      pin(1);
      for (long i = 0; i < n; ++i) {
        while (flag.load(std::memory_order_acquire) != 1) {
        }
        flag.store(0, std::memory_order_release);
      }
    });
    pin(0);
    auto t0 = std::chrono::steady_clock::now();
    for (long i = 0; i < n; ++i) {
      flag.store(1, std::memory_order_release);
      while (flag.load(std::memory_order_acquire) != 0) {
      }
    }
    double ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - t0).count() / double(n);
    other.join();
    if (ns < best) best = ns;
  }
  std::printf("{\"case\": \"core_distance\", \"round_trip_ns\": %.1f}\n", best);
  return 0;
}
