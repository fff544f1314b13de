// The seed's SimpleNN step time, the Braid twin of peers/torch_simplenn.py: Linear(10, 1), MSE, SGD lr 0.01,
// batch 64 of random data. A trial is 10 steps (zero_grad, forward, loss, backward, step); after one cold trial
// and 20 warm-up trials, `trials` trials give the per-step median / min / p90, plus forward-only (no grad) and
// forward+loss+backward times. Prints one JSON line with the peer's field names.
// usage: braid_simplenn_bench [--threads 1] [--trials 300]
#include <cstdio>

#include "bench_util.h"
#include "braid/core/core.h"
#include "braid/nn/functional.h"
#include "braid/nn/layers.h"
#include "braid/optim/sgd.h"

using namespace braid;
using braid::bench::now_s;

struct SimpleNN : nn::Module {
  nn::Linear fc = register_module("fc", nn::Linear(10, 1));
  Tensor forward(const Tensor& x) { return fc(x); }
};

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  int threads = int(args.i64("threads", 1));
  int trials = int(args.i64("trials", 300));
  set_num_threads(threads);
  manual_seed(0);
  SimpleNN model;
  optim::SGD opt(model.parameters(), {.lr = 0.01});
  Tensor x = randn({64, 10}), y = randn({64, 1});

  auto trial = [&](int steps = 10) {
    double t0 = now_s();
    for (int s = 0; s < steps; ++s) {
      opt.zero_grad();
      Tensor loss = nn::mse_loss(model.forward(x), y);
      loss.backward();
      opt.step();
    }
    return (now_s() - t0) / steps;
  };
  double cold = trial();
  for (int i = 0; i < 20; ++i) trial();
  std::vector<double> ts;
  for (int i = 0; i < trials; ++i) ts.push_back(trial());
  std::sort(ts.begin(), ts.end());

  auto timeit = [](auto&& fn, int n = 3000) {
    for (int i = 0; i < 100; ++i) fn();
    double t0 = now_s();
    for (int i = 0; i < n; ++i) fn();
    return (now_s() - t0) / n;
  };
  double fwd = timeit([&] {
    NoGradGuard ng;
    model.forward(x);
  });
  double fwdbwd = timeit([&] {
    model.zero_grad();
    nn::mse_loss(model.forward(x), y).backward();
  });
  std::printf(
      "{\"impl\": \"braid\", \"threads\": %d, \"cold_step_us\": %.1f, \"step_us_min\": %.1f, \"step_us_median\": %.1f, "
      "\"step_us_p90\": %.1f, \"fwd_nograd_us\": %.1f, \"fwd_loss_bwd_us\": %.1f}\n",
      threads, cold * 1e6, ts.front() * 1e6, bench::median(ts) * 1e6, ts[size_t(0.9 * double(ts.size()))] * 1e6,
      fwd * 1e6, fwdbwd * 1e6);
  return 0;
}
