// Braid on one CUDA device against the card's own limits, in three tables:
//  (a) GEMM TFLOP/s of braid::ops (matmul for square sizes; gemm_into with transposed views, as Linear calls it,
//      for the GEMMs of one training step of the 784-1024-1024-10 MLP at batch 256) and of a raw cublasSgemm on
//      the same operands, both FP32 without TF32 (cuBLAS's default math mode, which Braid keeps);
//  (b) effective bandwidth of element-wise ops (ops::binary Add, ops::unary Relu, in-place add_) on 64M floats
//      against a device-to-device cudaMemcpyAsync that moves the same bytes (read + write counted for both);
//  (c) MLP training samples/s on random data (Linear+ReLU, cross-entropy, SGD momentum 0.9), the twin of
//      peers/torch_gpu_mlp.py, which must run on the same card with a CUDA build of PyTorch.
// Braid's ops run on its own per-device stream, so every measurement is host-timed: a warm-up, then the median
// of 5 batches of calls, each batch closed by a synchronisation and long enough (>= 25 ms) for the clock not to
// matter. The raw cuBLAS and memcpy rows are timed the same way on a stream of their own. Host overheads (op
// dispatch, allocation) are part of Braid's time on purpose: they are what a training step pays.
// Also prints one JSON line per row. Without a CUDA device it prints "no CUDA device" and exits 0.
// usage: gpu_bench [--device 0] [--sizes 1024,4096,8192] [--elems 67108864] [--steps 300] [--warmup 30]
//                  [--sections gemm,elementwise,mlp]
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <string>
#include <vector>

#include "bench_util.h"
#include "braid/core/core.h"
#include "braid/kernels/cuda/check.h"
#include "braid/nn/functional.h"
#include "braid/nn/layers.h"
#include "braid/optim/sgd.h"

using namespace braid;
using braid::bench::now_s;

namespace {

// Seconds per call of `run` (which queues work; `sync` waits for it).
template <class Run, class Sync>
double seconds_per_call(Run&& run, Sync&& sync, int warmup = 3) {
  for (int i = 0; i < warmup; ++i) run();
  sync();
  double t0 = now_s();
  run();
  sync();
  double one = now_s() - t0;
  int reps = std::clamp(int(0.025 / std::max(one, 1e-7)), 2, 20000);
  std::vector<double> per_call;
  for (int batch = 0; batch < 5; ++batch) {
    double start = now_s();
    for (int i = 0; i < reps; ++i) run();
    sync();
    per_call.push_back((now_s() - start) / reps);
  }
  return bench::median(per_call);
}

// A stream and a cuBLAS handle of the benchmark's own, and device buffers it owns.
struct RawCuda {
  cudaStream_t stream = nullptr;
  cublasHandle_t blas = nullptr;
  std::vector<void*> buffers;

  explicit RawCuda(int device) {
    BRAID_CUDA_CHECK(cudaSetDevice(device));
    BRAID_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    BRAID_CUBLAS_CHECK(cublasCreate(&blas));
    BRAID_CUBLAS_CHECK(cublasSetStream(blas, stream));
  }
  ~RawCuda() {
    for (void* p : buffers) cudaFree(p);
    cublasDestroy(blas);
    cudaStreamDestroy(stream);
  }
  RawCuda(const RawCuda&) = delete;
  RawCuda& operator=(const RawCuda&) = delete;

  // A device buffer holding a copy of `t` (a contiguous CUDA tensor), or uninitialised bytes.
  float* copy_of(const Tensor& t) {
    float* p = alloc(size_t(t.numel()) * sizeof(float));
    cuda::synchronize(t.device().index);  // Braid's stream has finished writing t
    BRAID_CUDA_CHECK(cudaMemcpy(p, t.data<float>(), size_t(t.numel()) * sizeof(float), cudaMemcpyDeviceToDevice));
    return p;
  }
  float* alloc(size_t bytes) {
    void* p = nullptr;
    BRAID_CUDA_CHECK(cudaMalloc(&p, std::max<size_t>(bytes, 1)));
    buffers.push_back(p);
    return static_cast<float*>(p);
  }
  void free_all() {
    BRAID_CUDA_CHECK(cudaStreamSynchronize(stream));
    for (void* p : buffers) BRAID_CUDA_CHECK(cudaFree(p));
    buffers.clear();
  }
  void sync() const { BRAID_CUDA_CHECK(cudaStreamSynchronize(stream)); }
};

// Row-major C[m,n] = alpha op(A) op(B) + beta C with A stored [k,m] when trans_a and B stored [n,k] when trans_b,
// issued as the column-major C^T = op(B)^T op(A)^T.
void raw_sgemm(cublasHandle_t h, bool trans_a, bool trans_b, int64_t m, int64_t n, int64_t k, const float* a,
               const float* b, float beta, float* c) {
  const float alpha = 1.f;
  BRAID_CUBLAS_CHECK(cublasSgemm(h, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N, trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, int(n),
                                 int(m), int(k), &alpha, b, int(trans_b ? k : n), a, int(trans_a ? m : k), &beta, c,
                                 int(n)));
}

void gemm_section(const Device& dev, RawCuda& raw, const std::vector<int64_t>& sizes) {
  std::vector<bench::GemmShape> cases;
  for (int64_t s : sizes) cases.push_back({"square " + std::to_string(s), false, false, s, s, s, false});
  for (auto& g : bench::mlp_gemms({784, 1024, 1024, 10}, 256)) {
    g.name = "MLP " + g.name;
    cases.push_back(g);
  }
  auto sync_braid = [&] { cuda::synchronize(dev.index); };
  std::printf("\n## (a) GEMM, FP32: braid::ops vs raw cublasSgemm\n\n");
  std::printf("| case | m x n x k | braid TFLOP/s | cuBLAS TFLOP/s | braid / cuBLAS |\n|---|---|---|---|---|\n");
  double step_braid_s = 0, step_raw_s = 0, step_flops = 0;
  for (const auto& g : cases) {
    Generator gen(uint64_t(g.m * 31 + g.n * 7 + g.k));
    Tensor a = randn(g.trans_a ? Shape{g.k, g.m} : Shape{g.m, g.k}, dev, &gen);
    Tensor b = randn(g.trans_b ? Shape{g.n, g.k} : Shape{g.k, g.n}, dev, &gen);
    Tensor c = zeros({g.m, g.n}, dev);
    Tensor av = g.trans_a ? ops::transpose(a, 0, 1) : a, bv = g.trans_b ? ops::transpose(b, 0, 1) : b;
    const bool square = g.name.rfind("square", 0) == 0;
    double t_braid = square ? seconds_per_call([&] { Tensor out = ops::matmul(av, bv); }, sync_braid)
                            : seconds_per_call([&] { ops::gemm_into(c, av, bv, 1, g.accumulate ? 1 : 0); }, sync_braid);
    float *ra = raw.copy_of(a), *rb = raw.copy_of(b), *rc = raw.copy_of(c);
    double t_raw = seconds_per_call(
        [&] { raw_sgemm(raw.blas, g.trans_a, g.trans_b, g.m, g.n, g.k, ra, rb, g.accumulate ? 1.f : 0.f, rc); },
        [&] { raw.sync(); });
    raw.free_all();
    double tf_braid = g.flops() / t_braid * 1e-12, tf_raw = g.flops() / t_raw * 1e-12;
    if (!square) {
      step_braid_s += t_braid;
      step_raw_s += t_raw;
      step_flops += g.flops();
    }
    std::printf("| %s | %lld x %lld x %lld | %.2f | %.2f | %.2f |\n", g.name.c_str(), (long long)g.m, (long long)g.n,
                (long long)g.k, tf_braid, tf_raw, tf_braid / tf_raw);
    std::printf(
        "{\"bench\": \"gpu_gemm\", \"case\": \"%s\", \"m\": %lld, \"n\": %lld, \"k\": %lld, "
        "\"braid_us\": %.2f, \"cublas_us\": %.2f, \"braid_tflops\": %.3f, \"cublas_tflops\": %.3f}\n",
        g.name.c_str(), (long long)g.m, (long long)g.n, (long long)g.k, t_braid * 1e6, t_raw * 1e6, tf_braid, tf_raw);
  }
  if (step_flops > 0)
    std::printf("| MLP step, all GEMMs | | %.2f | %.2f | %.2f |\n", step_flops / step_braid_s * 1e-12,
                step_flops / step_raw_s * 1e-12, step_raw_s / step_braid_s);
  std::fflush(stdout);
}

void elementwise_section(const Device& dev, RawCuda& raw, int64_t n) {
  const double fbytes = double(n) * sizeof(float);
  Tensor a = full({n}, 1.5, dev), b = full({n}, -0.5, dev);
  auto sync_braid = [&] { cuda::synchronize(dev.index); };
  struct Row {
    std::string name;
    double bytes, seconds;
  };
  std::vector<Row> rows;
  rows.push_back({"ops::binary Add (out = a + b)", 3 * fbytes,
                  seconds_per_call([&] { Tensor out = ops::binary(ops::BinaryOp::Add, a, b); }, sync_braid)});
  rows.push_back({"ops::unary Relu (out = relu(a))", 2 * fbytes,
                  seconds_per_call([&] { Tensor out = ops::unary(ops::UnaryOp::Relu, a); }, sync_braid)});
  rows.push_back({"ops::add_ in place (a += b)", 3 * fbytes, seconds_per_call([&] { ops::add_(a, b); }, sync_braid)});
  // The reference: copies moving 2 and 3 tensors' worth of bytes (half read, half written).
  auto memcpy_seconds = [&](double traffic) {
    size_t copy = size_t(traffic / 2);
    float *src = raw.alloc(copy), *dst = raw.alloc(copy);
    BRAID_CUDA_CHECK(cudaMemsetAsync(src, 0, copy, raw.stream));
    double t = seconds_per_call(
        [&] { BRAID_CUDA_CHECK(cudaMemcpyAsync(dst, src, copy, cudaMemcpyDeviceToDevice, raw.stream)); },
        [&] { raw.sync(); });
    raw.free_all();
    return t;
  };
  double memcpy2 = memcpy_seconds(2 * fbytes), memcpy3 = memcpy_seconds(3 * fbytes);
  std::printf("\n## (b) Element-wise, %lld float32 (%.0f MiB per tensor): effective bandwidth\n\n", (long long)n,
              fbytes / (1 << 20));
  std::printf("| op | bytes moved | time (ms) | GB/s | vs cudaMemcpy D2D of the same bytes |\n|---|---|---|---|---|\n");
  for (const auto& r : rows) {
    double ref = r.bytes == 2 * fbytes ? memcpy2 : memcpy3;
    double gbs = r.bytes / r.seconds * 1e-9, ref_gbs = r.bytes / ref * 1e-9;
    std::printf("| braid %s | %.0f MiB | %.3f | %.0f | %.2f (memcpy %.0f GB/s) |\n", r.name.c_str(),
                r.bytes / (1 << 20), r.seconds * 1e3, gbs, gbs / ref_gbs, ref_gbs);
    std::printf(
        "{\"bench\": \"gpu_elementwise\", \"op\": \"%s\", \"elems\": %lld, \"bytes\": %.0f, \"ms\": %.4f, "
        "\"gbs\": %.1f, \"memcpy_gbs\": %.1f}\n",
        r.name.c_str(), (long long)n, r.bytes, r.seconds * 1e3, gbs, ref_gbs);
  }
  for (double traffic : {2 * fbytes, 3 * fbytes}) {
    double t = traffic == 2 * fbytes ? memcpy2 : memcpy3;
    std::printf("| cudaMemcpyAsync D2D of %.0f MiB | %.0f MiB | %.3f | %.0f | 1.00 |\n", traffic / 2 / (1 << 20),
                traffic / (1 << 20), t * 1e3, traffic / t * 1e-9);
  }
  std::fflush(stdout);
}

void mlp_section(const Device& dev, int steps, int warmup) {
  struct Config {
    std::vector<int64_t> dims;
    int64_t batch;
  };
  const std::vector<Config> configs = {{{784, 256, 128, 10}, 128}, {{784, 1024, 1024, 10}, 256}};
  std::printf("\n## (c) MLP training on random data (Linear+ReLU, cross-entropy, SGD lr 0.01 momentum 0.9)\n\n");
  std::printf("| model | batch | steps | ms / step | samples/s | last loss |\n|---|---|---|---|---|---|\n");
  for (const auto& cfg : configs) {
    manual_seed(0);
    nn::Sequential model;
    std::string name;
    for (size_t i = 0; i < cfg.dims.size(); ++i) {
      if (i + 1 < cfg.dims.size()) model->push_back(nn::Linear(cfg.dims[i], cfg.dims[i + 1]));
      if (i + 2 < cfg.dims.size()) model->push_back(nn::ReLU());
      if (i) name.push_back('-');
      name.append(std::to_string(cfg.dims[i]));
    }
    model->to(dev);
    optim::SGD opt(model->parameters(), {.lr = 0.01, .momentum = 0.9});
    // A pool of batches already on the device, so the timed loop measures training, not host-to-device copies.
    const int pool = 16;
    std::vector<Tensor> xs, ys;
    Generator gen(1);
    for (int i = 0; i < pool; ++i) {
      xs.push_back(randn({cfg.batch, cfg.dims.front()}, dev, &gen));
      Tensor y = empty({cfg.batch}, DType::Int64);
      for (int64_t j = 0; j < cfg.batch; ++j) y.data<int64_t>()[j] = int64_t(gen.next() % uint64_t(cfg.dims.back()));
      ys.push_back(ops::to_device(y, dev));
    }
    Tensor loss;
    auto step = [&](int i) {
      opt.zero_grad();
      loss = nn::functional::cross_entropy(model(xs[size_t(i % pool)]), ys[size_t(i % pool)]);
      loss.backward();
      opt.step();
    };
    for (int i = 0; i < warmup; ++i) step(i);
    cuda::synchronize(dev.index);
    double t0 = now_s();
    for (int i = 0; i < steps; ++i) step(i);
    cuda::synchronize(dev.index);
    double dt = now_s() - t0;
    double sps = double(steps) * double(cfg.batch) / dt;
    std::printf("| %s | %lld | %d | %.3f | %.0f | %.4f |\n", name.c_str(), (long long)cfg.batch, steps,
                dt / steps * 1e3, sps, loss.item<float>());
    std::printf(
        "{\"bench\": \"gpu_mlp\", \"impl\": \"braid\", \"model\": \"%s\", \"batch\": %lld, \"steps\": %d, "
        "\"step_ms\": %.4f, \"samples_per_s\": %.1f}\n",
        name.c_str(), (long long)cfg.batch, steps, dt / steps * 1e3, sps);
    std::fflush(stdout);
  }
}

}  // namespace

int main(int argc, char** argv) {
  bench::Args args(argc, argv);
  if (!cuda::is_available()) {
    std::printf("no CUDA device\n");
    return 0;
  }
  const int index = int(args.i64("device", 0));
  const std::vector<int64_t> sizes = bench::parse_ints(args.str("sizes", "1024,4096,8192"));
  const int64_t elems = args.i64("elems", int64_t(64) << 20);
  const int steps = int(args.i64("steps", 300)), warmup = int(args.i64("warmup", 30));
  const std::string sections = args.str("sections", "gemm,elementwise,mlp");
  auto wants = [&](const char* s) { return sections.find(s) != std::string::npos; };

  cudaDeviceProp prop{};
  BRAID_CUDA_CHECK(cudaGetDeviceProperties(&prop, index));
  std::printf("# Braid gpu_bench on cuda:%d: %s, %d SMs, %.1f GiB\n", index, prop.name, prop.multiProcessorCount,
              double(prop.totalGlobalMem) / double(1 << 30));
  const Device dev = Device::cuda(index);
  RawCuda raw(index);
  if (wants("gemm")) gemm_section(dev, raw, sizes);
  if (wants("elementwise")) elementwise_section(dev, raw, elems);
  if (wants("mlp")) mlp_section(dev, steps, warmup);
  return 0;
}
