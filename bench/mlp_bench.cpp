// MLP training throughput on Fashion-MNIST, the Braid twin of peers/torch_mlp.py: the same model (784-h...-10 with
// ReLU), SGD (lr, momentum 0.9), cross-entropy, batch and thread count, and exactly its timed region: each epoch
// the training set is shuffled once in memory (untimed), then forward + loss + backward + step run over contiguous
// row slices of the shuffled tensor (narrow: a view, no copy). Prints one JSON line per epoch (samples_per_s,
// last_loss, test_acc) and a summary line that adds the GEMM view of the step: FLOPs per sample of the GEMMs Braid
// issues, the GFLOP/s they reach inside training, and the time the same GEMMs take alone (braid::ops and raw
// cblas_sgemm), i.e. the GEMM share of the step.
// usage: braid_mlp_bench --threads 1 --hidden 256,128 --batch 128 --epochs 1 [--steps N] [--seed 0] [--lr 0.1]
//                        [--data DIR] [--gemm-reps 30] [--breakdown] [--eval 1]
// --breakdown adds clocks between the phases of each step (zero_grad, forward, loss, backward, step) and prints
// their per-step means as one more JSON line; it is off by default so the timed region is the peer's exactly.
// --eval 0 skips the untimed test-set evaluation (test_acc -1), --gemm-reps 0 the GEMM probe: for profiling.
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"
#include "braid/core/core.h"
#include "braid/data/idx.h"
#include "braid/nn/functional.h"
#include "braid/nn/layers.h"
#include "braid/optim/sgd.h"

using namespace braid;
using braid::bench::now_s;

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  int threads = int(args.i64("threads", 1));
  std::string hidden = args.str("hidden", "256,128");
  int64_t batch = args.i64("batch", 128);
  int epochs = int(args.i64("epochs", 1));
  int64_t max_steps = args.i64("steps", 0);  // 0: the whole epoch
  uint64_t seed = uint64_t(args.i64("seed", 0));
  double lr = args.f64("lr", 0.1);
  int gemm_reps = int(args.i64("gemm-reps", 30));
  std::string root = args.str("data", data::default_fashion_mnist_root);
  bool breakdown = args.i64("breakdown", 0) != 0;
  bool do_eval = args.i64("eval", 1) != 0;
  if (epochs < 1 || batch < 1) {
    std::fprintf(stderr, "braid_mlp_bench: --epochs and --batch must be at least 1\n");
    return 2;
  }

  set_num_threads(threads);
  manual_seed(seed);
  Tensor xtr = data::read_idx_images(root + "/train-images-idx3-ubyte.gz");
  Tensor ytr = data::read_idx_labels(root + "/train-labels-idx1-ubyte.gz");
  Tensor xte = data::read_idx_images(root + "/t10k-images-idx3-ubyte.gz");
  Tensor yte = data::read_idx_labels(root + "/t10k-labels-idx1-ubyte.gz");

  std::vector<int64_t> dims{784};
  for (int64_t h : bench::parse_ints(hidden)) dims.push_back(h);
  dims.push_back(10);
  nn::Sequential model;
  for (size_t i = 0; i + 1 < dims.size(); ++i) {
    model->push_back(nn::Linear(dims[i], dims[i + 1]));
    if (i + 2 < dims.size()) model->push_back(nn::ReLU());
  }
  optim::SGD opt(model->parameters(), {.lr = lr, .momentum = 0.9});

  auto evaluate = [&]() {
    NoGradGuard ng;
    model->eval();
    std::vector<int64_t> pred = ops::argmax(model(xte), 1).to_vector<int64_t>();
    std::vector<int64_t> truth = yte.to_vector<int64_t>();
    int64_t correct = 0;
    for (size_t i = 0; i < pred.size(); ++i) correct += pred[i] == truth[i];
    model->train();
    return double(correct) / double(pred.size());
  };

  Generator gen(seed);
  const int64_t n = xtr.shape()[0];
  std::vector<double> sps;
  double phase[5] = {0, 0, 0, 0, 0};  // zero_grad, forward, loss, backward, step (seconds, last epoch)
  for (int ep = 1; ep <= epochs; ++ep) {
    Tensor perm = randperm(n, &gen);
    Tensor X = ops::index_select(xtr, 0, perm), Y = ops::index_select(ytr, 0, perm);
    Tensor loss;
    int64_t samples = 0, steps = 0;
    double c0 = bench::cpu_s(), t0 = now_s();
    for (int64_t i = 0; i < n; i += batch) {
      if (max_steps > 0 && steps >= max_steps) break;
      int64_t b = std::min(batch, n - i);
      Tensor xb = ops::narrow(X, 0, i, b), yb = ops::narrow(Y, 0, i, b);
      if (breakdown) {
        double c0 = now_s();
        opt.zero_grad();
        double c1 = now_s();
        Tensor logits = model(xb);
        double c2 = now_s();
        loss = nn::functional::cross_entropy(logits, yb);
        double c3 = now_s();
        loss.backward();
        double c4 = now_s();
        opt.step();
        double c5 = now_s();
        double c[6] = {c0, c1, c2, c3, c4, c5};
        for (int p = 0; p < 5; ++p) phase[p] += c[p + 1] - c[p];
      } else {
        opt.zero_grad();
        loss = nn::functional::cross_entropy(model(xb), yb);
        loss.backward();
        opt.step();
      }
      samples += b;
      ++steps;
    }
    double dt = now_s() - t0, cpu = bench::cpu_s() - c0;
    if (breakdown) {
      std::printf("{\"breakdown_us_per_step\": true, \"epoch\": %d, \"zero_grad\": %.1f, \"forward\": %.1f, "
                  "\"loss\": %.1f, \"backward\": %.1f, \"step\": %.1f, \"total\": %.1f}\n",
                  ep, phase[0] / steps * 1e6, phase[1] / steps * 1e6, phase[2] / steps * 1e6, phase[3] / steps * 1e6,
                  phase[4] / steps * 1e6, dt / steps * 1e6);
      for (double& p : phase) p = 0;
    }
    double acc = do_eval ? evaluate() : -1;
    sps.push_back(double(samples) / dt);
    std::printf(
        "{\"epoch\": %d, \"threads\": %d, \"hidden\": \"%s\", \"batch\": %lld, \"steps\": %lld, \"epoch_s\": %.4f, "
        "\"samples_per_s\": %.1f, \"cpu_s\": %.4f, \"last_loss\": %.4f, \"test_acc\": %.4f}\n",
        ep, threads, hidden.c_str(), (long long)batch, (long long)steps, dt, sps.back(), cpu, loss.item<float>(), acc);
    std::fflush(stdout);
  }

  if (gemm_reps <= 0) return 0;  // profiling runs skip the GEMM probe
  // The GEMM view of a full-batch step.
  auto gemms = bench::mlp_gemms(dims, batch);
  double flops_step = bench::total_flops(gemms);
  double flops_per_sample = flops_step / double(batch);
  double gemm_braid_s = bench::time_gemms(gemms, false, gemm_reps);
  double gemm_cblas_s = bench::time_gemms(gemms, true, gemm_reps);
  double step_s = double(batch) / sps.back();
  std::printf(
      "{\"summary\": true, \"impl\": \"braid\", \"threads\": %d, \"hidden\": \"%s\", \"batch\": %lld, "
      "\"samples_per_s\": %.1f, \"step_us\": %.1f, \"gemm_flops_per_sample\": %.0f, \"gemm_gflops_in_training\": %.2f, "
      "\"gemm_alone_braid_us\": %.1f, \"gemm_alone_cblas_us\": %.1f, \"gemm_alone_braid_gflops\": %.2f, "
      "\"gemm_alone_cblas_gflops\": %.2f, \"gemm_share_of_step\": %.3f, \"first_layer_dx_skipped\": true}\n",
      threads, hidden.c_str(), (long long)batch, sps.back(), step_s * 1e6, flops_per_sample,
      flops_per_sample * sps.back() * 1e-9, gemm_braid_s * 1e6, gemm_cblas_s * 1e6, flops_step / gemm_braid_s * 1e-9,
      flops_step / gemm_cblas_s * 1e-9, gemm_braid_s / step_s);
  return 0;
}
