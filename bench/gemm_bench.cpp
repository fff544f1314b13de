// Single-precision GEMM throughput, through braid::ops (matmul for square, gemm_into with transposed views for
// the training shapes) and through raw cblas_sgemm on the same operands: square n x n (default 1024, 2048) and
// the GEMMs of one training step of the benchmark MLPs (see bench_util.h). Prints one JSON line per case with
// the median GFLOP/s of each path.
// usage: braid_gemm_bench --threads 1 [--square 1024,2048] [--min-s 0.5]
//                         [--mlp "784,256,128,10@128;784,1024,1024,10@256"] [--reps 50]
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"
#include "braid/core/core.h"

using namespace braid;
using braid::bench::now_s;

extern "C" char* openblas_get_corename(void);
extern "C" char* openblas_get_config(void);

namespace {

// Median seconds of fn over at least 3 runs and min_s seconds, after 2 warm-up runs.
template <class F>
double time_median(F&& fn, double min_s) {
  fn();
  fn();
  std::vector<double> ts;
  double start = now_s();
  while (ts.size() < 3 || now_s() - start < min_s) {
    double t0 = now_s();
    fn();
    ts.push_back(now_s() - t0);
  }
  return bench::median(ts);
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  int threads = int(args.i64("threads", 1));
  double min_s = args.f64("min-s", 0.5);
  int reps = int(args.i64("reps", 50));
  set_num_threads(threads);
  manual_seed(0);
  // Which kernel OpenBLAS's runtime dispatch picked (OPENBLAS_CORETYPE overrides it).
  std::printf("{\"case\": \"blas\", \"threads\": %d, \"corename\": \"%s\", \"config\": \"%s\"}\n", threads,
              openblas_get_corename(), openblas_get_config());

  // Interleave the two paths (braid, cblas, braid, cblas) and keep each one's median.
  for (int64_t n : bench::parse_ints(args.str("square", "1024,2048"))) {
    Tensor a = randn({n, n}), b = randn({n, n}), c = zeros({n, n});
    double fl = 2.0 * double(n) * double(n) * double(n);
    std::vector<double> tb, tc;
    for (int r = 0; r < 2; ++r) {
      tb.push_back(time_median([&] { Tensor out = ops::matmul(a, b); }, min_s / 2));
      tc.push_back(time_median(
          [&] {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(n), int(n), int(n), 1.f, a.data<float>(),
                        int(n), b.data<float>(), int(n), 0.f, c.data<float>(), int(n));
          },
          min_s / 2));
    }
    std::printf("{\"case\": \"square\", \"n\": %lld, \"threads\": %d, \"braid_matmul_gflops\": %.2f, "
                "\"cblas_gflops\": %.2f}\n",
                (long long)n, threads, fl / bench::median(tb) * 1e-9, fl / bench::median(tc) * 1e-9);
    std::fflush(stdout);
  }

  // Training shapes: "dims@batch;dims@batch".
  std::string mlps = args.str("mlp", "784,256,128,10@128;784,1024,1024,10@256");
  size_t pos = 0;
  while (pos < mlps.size()) {
    size_t end = mlps.find(';', pos);
    if (end == std::string::npos) end = mlps.size();
    std::string spec = mlps.substr(pos, end - pos);
    pos = end + 1;
    size_t at = spec.find('@');
    std::vector<int64_t> dims = bench::parse_ints(spec.substr(0, at));
    int64_t batch = std::stoll(spec.substr(at + 1));
    auto gemms = bench::mlp_gemms(dims, batch);
    std::vector<double> each_b, each_c;
    double pass_b = bench::time_gemms(gemms, false, reps, &each_b);
    double pass_c = bench::time_gemms(gemms, true, reps, &each_c);
    double fl = bench::total_flops(gemms);
    for (size_t i = 0; i < gemms.size(); ++i) {
      auto& g = gemms[i];
      std::printf("{\"case\": \"train_shape\", \"mlp\": \"%s\", \"gemm\": \"%s\", \"m\": %lld, \"n\": %lld, "
                  "\"k\": %lld, \"trans_a\": %d, \"trans_b\": %d, \"threads\": %d, \"braid_us\": %.1f, "
                  "\"cblas_us\": %.1f, \"braid_gflops\": %.2f, \"cblas_gflops\": %.2f}\n",
                  spec.c_str(), g.name.c_str(), (long long)g.m, (long long)g.n, (long long)g.k, g.trans_a, g.trans_b,
                  threads, each_b[i] * 1e6, each_c[i] * 1e6, g.flops() / each_b[i] * 1e-9,
                  g.flops() / each_c[i] * 1e-9);
    }
    std::printf("{\"case\": \"train_step\", \"mlp\": \"%s\", \"threads\": %d, \"flops_per_step\": %.0f, "
                "\"braid_us\": %.1f, \"cblas_us\": %.1f, \"braid_gflops\": %.2f, \"cblas_gflops\": %.2f}\n",
                spec.c_str(), threads, fl, pass_b * 1e6, pass_c * 1e6, fl / pass_b * 1e-9, fl / pass_c * 1e-9);
    std::fflush(stdout);
  }
  return 0;
}
