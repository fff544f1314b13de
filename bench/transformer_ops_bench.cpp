// Forward + backward time of the Transformer's fused ops against PyTorch 1.13 (peers/torch_transformer_ops.py does
// the same with nanoGPT's attention: q @ k^T, scale, masked_fill(-inf), softmax, @ v): scaled dot-product
// attention [B, H, T, D] (causal) and layer_norm [rows, cols] with affine parameters, float32, one backward per
// forward with a fixed random output gradient. Prints one JSON line: the best mean milliseconds per call over
// a few rounds.
// usage: braid_transformer_ops_bench --threads 1 [--reps 50] [--batch 16 --heads 4 --seq 128 --head-dim 32]
//                                    [--rows 2048 --cols 128] [--only sdpa|layer_norm]
#include <cstdio>
#include <functional>
#include <string>

#include "bench_util.h"
#include "braid/core/core.h"
#include "braid/nn/functional.h"

using namespace braid;
namespace F = braid::nn::functional;

namespace {

// Best of 3 rounds of `reps` calls, after a warm-up, in milliseconds per call.
double best_ms(const std::function<void()>& f, int reps) {
  for (int i = 0; i < 5; ++i) f();
  double best = 1e30;
  for (int round = 0; round < 3; ++round) {
    const double t0 = bench::now_s();
    for (int i = 0; i < reps; ++i) f();
    best = std::min(best, (bench::now_s() - t0) / reps);
  }
  return best * 1e3;
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  const int threads = int(args.i64("threads", 1));
  const int reps = int(args.i64("reps", 50));
  const int64_t b = args.i64("batch", 16), h = args.i64("heads", 4), t = args.i64("seq", 128);
  const int64_t d = args.i64("head-dim", 32), rows = args.i64("rows", 2048), cols = args.i64("cols", 128);
  set_num_threads(threads);
  manual_seed(0);

  Tensor q = randn({b, h, t, d}).requires_grad_(), k = randn({b, h, t, d}).requires_grad_();
  Tensor v = randn({b, h, t, d}).requires_grad_(), go = randn({b, h, t, d});
  auto sdpa = [&] { F::scaled_dot_product_attention(q, k, v, true).backward(go); };

  Tensor x = randn({rows, cols}).requires_grad_(), w = randn({cols}).requires_grad_();
  Tensor bias = randn({cols}).requires_grad_(), gy = randn({rows, cols});
  auto ln = [&] { F::layer_norm(x, {cols}, w, bias).backward(gy); };

  const std::string only = args.str("only", "");
  const double sdpa_ms = only != "layer_norm" ? best_ms(sdpa, reps) : 0;
  const double ln_ms = only != "sdpa" ? best_ms(ln, reps * 4) : 0;
  std::printf("{\"impl\": \"braid\", \"threads\": %d, \"sdpa_ms\": %.4f, \"layer_norm_ms\": %.4f}\n", threads, sdpa_ms,
              ln_ms);
  return 0;
}
