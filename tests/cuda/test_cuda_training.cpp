// Training on a CUDA device against the same training on the CPU: an MLP with every layer type, moved with
// Module::to or loaded from the CPU model's state_dict, must give the same losses, gradients and parameters for
// SGD with momentum and AdamW. Also: braid::to is differentiable across devices; an op given tensors on two devices
// throws naming both; steady training steps are served by the caching allocator; a device that does not exist is
// refused. The last test is the only one that runs on machines without a GPU (and skips on machines with one).
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <iomanip>
#include <string>
#include <vector>

#include "../test_util.h"
#include "cuda_test_util.h"
#include "braid/core/core.h"
#include "braid/nn/functional.h"
#include "braid/nn/layers.h"
#include "braid/optim/adam.h"
#include "braid/optim/sgd.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;

namespace {

using braid::test::kGpu;

class CudaTraining : public braid::test::CudaTest {};

Tensor to_gpu(const Tensor& t) { return ops::to_device(t, kGpu); }

Tensor randint_cpu(const Shape& s, int64_t lo, int64_t hi, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> v(size_t(shape_numel(s)));
  for (auto& x : v) x = lo + int64_t(g.next() % uint64_t(hi - lo));
  return from_vector(v, s);
}

// `got` (on the GPU) against the CPU `want`: |got - want| <= atol + rtol * |want| per element; NaN fails.
::testing::AssertionResult close_to(const Tensor& got, const Tensor& want, double rtol, double atol) {
  if (got.device() != kGpu) return ::testing::AssertionFailure() << "result is on " << got.device();
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "result is " << shape_str(got.shape()) << " " << got.dtype()
                                         << ", expected " << shape_str(want.shape()) << " " << want.dtype();
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i)
    if (!(std::abs(g[i] - w[i]) <= atol + rtol * std::abs(w[i])))
      return ::testing::AssertionFailure() << std::setprecision(10) << shape_str(got.shape()) << ": element " << i
                                           << " is " << g[i] << ", expected " << w[i];
  return ::testing::AssertionSuccess();
}

// Every layer type; Dropout runs in eval mode (the identity), so both devices compute the same function.
nn::Sequential make_mlp() {
  return nn::Sequential(nn::Linear(20, 64), nn::ReLU(), nn::Linear(64, 48), nn::GELU(), nn::LayerNorm(48),
                        nn::Linear(48, 32), nn::Tanh(), nn::Dropout(0.25), nn::Linear(32, 16), nn::Sigmoid(),
                        nn::Linear(16, 10));
}

struct Batch {
  Tensor x, y;
};

Batch make_batch(uint64_t seed) {
  Generator g(seed);
  return {randn({64, 20}, {}, &g), randint_cpu({64}, 0, 10, seed + 1)};
}

// One step: forward, cross-entropy, backward, optimizer step; returns the loss.
float train_step(nn::Sequential& model, optim::Optimizer& opt, const Batch& b) {
  opt.zero_grad();
  Tensor loss = nn::functional::cross_entropy(model(b.x), b.y);
  loss.backward();
  opt.step();
  return loss.item<float>();
}

void expect_same_parameters(const nn::Sequential& gpu, const nn::Sequential& cpu, double rtol, double atol,
                            bool grads = false) {
  auto pg = gpu->named_parameters(), pc = cpu->named_parameters();
  ASSERT_EQ(pg.size(), pc.size());
  for (size_t i = 0; i < pg.size(); ++i) {
    SCOPED_TRACE(pg[i].first);
    ASSERT_EQ(pg[i].first, pc[i].first);
    EXPECT_EQ(pg[i].second.device(), kGpu);
    if (grads) {
      ASSERT_TRUE(pg[i].second.grad().defined() && pc[i].second.grad().defined());
      EXPECT_TRUE(close_to(pg[i].second.grad(), pc[i].second.grad(), rtol, atol));
    } else {
      EXPECT_TRUE(close_to(pg[i].second, pc[i].second, rtol, atol));
    }
  }
}

// Trains `cpu` and `gpu` (same weights) side by side for a few steps on fresh batches.
template <class Optim, class Options>
void train_side_by_side(nn::Sequential& cpu, nn::Sequential& gpu, Options options, uint64_t seed) {
  cpu->eval();
  gpu->eval();
  // The gradients of one backward first, before any update can blur a wrong one.
  Batch b0 = make_batch(seed);
  nn::functional::cross_entropy(cpu(b0.x), b0.y).backward();
  nn::functional::cross_entropy(gpu(to_gpu(b0.x)), to_gpu(b0.y)).backward();
  expect_same_parameters(gpu, cpu, 1e-4, 1e-6, /*grads=*/true);

  Optim opt_cpu(cpu->parameters(), options), opt_gpu(gpu->parameters(), options);
  for (int step = 0; step < 6; ++step) {
    SCOPED_TRACE("step " + std::to_string(step));
    Batch b = make_batch(seed + 10 + uint64_t(step) * 2);
    float loss_cpu = train_step(cpu, opt_cpu, b);
    float loss_gpu = train_step(gpu, opt_gpu, Batch{to_gpu(b.x), to_gpu(b.y)});
    EXPECT_NEAR(loss_gpu, loss_cpu, 1e-4 * std::abs(loss_cpu) + 1e-6);
  }
  expect_same_parameters(gpu, cpu, 1e-4, 1e-5);
}

TEST_F(CudaTraining, MlpWithSgdMomentumMatchesCpu) {
  manual_seed(11);
  nn::Sequential cpu = make_mlp();
  nn::Sequential gpu = make_mlp();
  gpu->load_state_dict(cpu->state_dict());
  gpu->to(kGpu);  // moved after loading: Module::to carries every parameter and buffer
  for (const auto& p : gpu->parameters()) EXPECT_EQ(p.device(), kGpu);
  train_side_by_side<optim::SGD>(cpu, gpu, optim::SGDOptions{.lr = 0.05, .momentum = 0.9, .weight_decay = 1e-4}, 100);
}

TEST_F(CudaTraining, MlpWithAdamWMatchesCpu) {
  manual_seed(12);
  nn::Sequential cpu = make_mlp();
  nn::Sequential gpu = make_mlp();
  gpu->to(kGpu);
  gpu->load_state_dict(cpu->state_dict());  // loaded after moving: a CPU state dict copied into CUDA parameters
  // Adam's step m / (sqrt(v) + eps) does not shrink with the gradient: with the default eps (1e-8) a gradient
  // element near 1e-8, which cancellation can make of any sign, would turn float rounding noise into a step of
  // order lr. eps = 1e-3 bounds that sensitivity; the code path is the same.
  train_side_by_side<optim::AdamW>(cpu, gpu, optim::AdamWOptions{.lr = 1e-2, .eps = 1e-3, .weight_decay = 1e-2}, 200);
}

TEST_F(CudaTraining, DropoutInTrainingModeUsesTheSameMaskAsTheCpu) {
  // Random tensors are drawn on the host and copied, so one seed gives one mask on both devices.
  Tensor x = randn({33, 65});
  Generator g1(7), g2(7);
  Tensor want = nn::functional::dropout(x, 0.3, true, &g1);
  Tensor got = nn::functional::dropout(to_gpu(x), 0.3, true, &g2);
  EXPECT_TRUE(close_to(got, want, 1e-6, 0));
  double zeros = 0;
  for (float v : got.to_vector<float>()) zeros += v == 0;
  EXPECT_NEAR(zeros / double(got.numel()), 0.3, 0.05);
}

TEST_F(CudaTraining, ToDeviceIsDifferentiable) {
  Tensor x = randn({33, 65}).requires_grad_();
  Tensor y = braid::to(x, kGpu);
  EXPECT_EQ(y.device(), kGpu);
  EXPECT_TRUE(y.requires_grad());
  braid::sum(braid::mul(y, y)).backward();
  ASSERT_TRUE(x.grad().defined());
  EXPECT_TRUE(x.grad().device().is_cpu());
  EXPECT_TRUE(ops::allclose(x.grad(), ops::affine(x.detach(), 2, 0), 1e-6, 1e-6));
  // And back: a CUDA leaf used in a CPU computation gets its gradient on the GPU.
  Tensor w = to_gpu(randn({7})).requires_grad_();
  braid::sum(braid::to(w, Device::cpu()) * 3.0).backward();
  ASSERT_TRUE(w.grad().defined());
  EXPECT_TRUE(close_to(w.grad(), full({7}, 3.0), 0, 0));
}

TEST_F(CudaTraining, MixingDevicesInOneOpThrows) {
  const std::vector<std::string> both = {"cpu", "cuda:0"};
  Tensor c = randn({4, 5}), g = to_gpu(randn({4, 5}));
  Tensor gw = to_gpu(randn({3, 5})), gtarget = to_gpu(from_vector(std::vector<int64_t>{0, 1, 2, 0}));
  expect_error([&] { ops::binary(ops::BinaryOp::Add, c, g); }, both);
  expect_error([&] { braid::add(g, c); }, both);
  expect_error([&] { (void)(c * g); }, both);
  expect_error([&] { ops::matmul(c, to_gpu(randn({5, 3}))); }, both);
  expect_error([&] { braid::matmul(g, randn({5, 3})); }, both);
  expect_error([&] { ops::gemm_into(empty({4, 3}), g, to_gpu(randn({5, 3}))); }, both);
  expect_error([&] { ops::linear(g, gw, randn({3})); }, both);  // a CPU bias
  expect_error([&] { braid::linear(g, gw, randn({3})); }, both);
  expect_error([&] { ops::linear(g, randn({3, 5}), Tensor()); }, both);
  expect_error([&] { nn::functional::cross_entropy(g, from_vector(std::vector<int64_t>{0, 1, 2, 3})); }, both);
  expect_error([&] { ops::nll(ops::softmax(c, 1, true), gtarget); }, both);
  expect_error([&] { ops::add_(g, c); }, both);
  expect_error([&] { ops::index_select(g, 0, from_vector(std::vector<int64_t>{0})); }, both);
  expect_error([&] { ops::cat({c, g}, 0); }, both);
  expect_error([&] { ops::sgd_update_(g, c, Tensor(), {0.1, 0, 0, 0, false, true}); }, both);
  expect_error(
      [&] {
        ops::adam_update_(g, to_gpu(c), zeros({4, 5}), to_gpu(zeros({4, 5})), {1e-3, 0.9, 0.999, 1e-8, 0, 1, false});
      },
      both);
  // A model on the GPU fed a CPU batch.
  nn::Linear fc(5, 3);
  fc->to(kGpu);
  expect_error([&] { fc(c); }, both);
}

TEST_F(CudaTraining, SteadyTrainingStepsDoNotCallCudaMalloc) {
  const int64_t in_use_before = cuda::memory_stats(0).bytes_in_use;
  {
    manual_seed(13);
    nn::Sequential model(nn::Linear(100, 64), nn::ReLU(), nn::Linear(64, 10));
    model->to(kGpu);
    optim::SGD opt(model->parameters(), {.lr = 0.05, .momentum = 0.9});
    Batch b{to_gpu(randn({32, 100})), to_gpu(randint_cpu({32}, 0, 10, 14))};
    auto step = [&] {
      train_step(model, opt, b);
      cuda::synchronize();
    };
    // The first step creates the momentum buffers; the second is the first to run with them alive, so its peak
    // holds one more set of blocks. From the third on every step is the same sequence of allocations.
    step();
    step();
    const cuda::MemoryStats base = cuda::memory_stats(0);
    for (int i = 0; i < 5; ++i) {
      step();
      cuda::MemoryStats now = cuda::memory_stats(0);
      EXPECT_EQ(now.malloc_calls, base.malloc_calls) << "step " << i + 3 << " called cudaMalloc";
      EXPECT_EQ(now.bytes_in_use, base.bytes_in_use) << "step " << i + 3;
      EXPECT_EQ(now.bytes_cached, base.bytes_cached) << "step " << i + 3;
    }
  }
  // Everything the model, optimizer and batch held is back in the cache, and empty_cache gives it to the driver.
  EXPECT_EQ(cuda::memory_stats(0).bytes_in_use, in_use_before);
  cuda::empty_cache();
  EXPECT_EQ(cuda::memory_stats(0).bytes_cached, 0);
  EXPECT_EQ(cuda::memory_stats(0).bytes_in_use, in_use_before);
  // And the device still allocates after that.
  EXPECT_EQ(to_gpu(ones({3})).to_vector<float>(), (std::vector<float>{1, 1, 1}));
}

TEST_F(CudaTraining, NonexistentDeviceThrows) {
  const int n = cuda::device_count();
  const Device missing = Device::cuda(n);
  std::string msg = error_of([&] { empty({2}, missing); });
  EXPECT_CONTAINS(msg, std::to_string(n));
  EXPECT_THROW(ops::to_device(randn({2}), missing), Error);
  EXPECT_THROW(randn({2}, missing), Error);
  EXPECT_THROW(zeros({2}, Device::cuda(-1)), Error);
  EXPECT_THROW(cuda::memory_stats(n), Error);
  EXPECT_THROW(cuda::synchronize(n), Error);
  nn::Linear fc(3, 2);
  EXPECT_THROW(fc->to(missing), Error);
  for (const auto& p : fc->parameters()) EXPECT_TRUE(p.device().is_cpu());
}

// softmax_backward and nll_backward take a second floating-point tensor (the output, the loss gradient): a pair on
// two devices must be refused like in every other op, not handed to a kernel as a pointer of the wrong device.
TEST_F(CudaTraining, BackwardOpsRejectMixedDevices) {
  const std::vector<std::string> both = {"cpu", "cuda:0"};
  Tensor logits = to_gpu(randn({4, 5}));
  Tensor y = ops::softmax(logits, 1), lp = ops::softmax(logits, 1, true);
  Tensor target = to_gpu(from_vector(std::vector<int64_t>{0, 1, 2, 3}));
  expect_error([&] { ops::softmax_backward(randn({4, 5}), y, 1); }, both);
  expect_error([&] { ops::softmax_backward(randn({4, 5}), lp, 1, true); }, both);
  expect_error([&] { ops::nll_backward(lp, target, randn({4}), 0.25, true); }, both);
  expect_error([&] { ops::nll_backward(lp, target, scalar_tensor(1.0), 0.25, false); }, both);
}

// The only test here that runs without a GPU: a CUDA device is refused with braid::Error (never a crash), and a
// model that failed to move stays where it was and keeps working.
TEST(CudaUnavailable, CudaDevicesAreRefusedCleanly) {
  if (cuda::is_available()) GTEST_SKIP() << "a CUDA device is visible; this test is for machines without one";
  EXPECT_EQ(cuda::device_count(), 0);
  auto expect_cuda_error = [](const std::function<void()>& f) {
    std::string msg = error_of(f);
    std::string lower = msg;
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    EXPECT_NE(lower.find("cuda"), std::string::npos) << "message does not name the device: " << msg;
  };
  expect_cuda_error([] { empty({2, 3}, Device::cuda(0)); });
  expect_cuda_error([] { zeros({2, 3}, Device::cuda(0)); });
  expect_cuda_error([] { randn({2, 3}, Device::cuda(0)); });
  expect_cuda_error([] { ops::to_device(ones({2}), Device::cuda(0)); });
  expect_cuda_error([] { braid::to(ones({2}).requires_grad_(), Device::cuda(0)); });
  expect_cuda_error([] { from_vector(std::vector<float>{1, 2}, {2}, Device::cuda(0)); });
  nn::Linear fc(3, 2);
  expect_cuda_error([&] { fc->to(Device::cuda(0)); });
  for (const auto& p : fc->parameters()) EXPECT_TRUE(p.device().is_cpu());
  EXPECT_EQ(fc(ones({1, 3})).shape(), (Shape{1, 2}));
  // The device-wide calls have nothing to do.
  EXPECT_NO_THROW(cuda::synchronize());
  EXPECT_NO_THROW(cuda::empty_cache());
  EXPECT_NO_THROW(cuda::set_poison_allocations(false));
}

}  // namespace
