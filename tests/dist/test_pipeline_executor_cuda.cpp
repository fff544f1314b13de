// The pipeline executor with its stages on CUDA (one GPU per rank of this host, else skipped): received activations
// and gradients land on the stage's device, tensors cross ranks over NCCL without tags (batched, in order), and two
// SGD steps equal one process on the CPU. On one process the two stages share cuda:0 and hand over in place.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "braid/dist/pipeline_executor.h"
#include "pipeline_test_util.h"

namespace braid {
namespace {

using pipeline_test::Batch;
using pipeline_test::mse;

constexpr int64_t kIn = 8, kHidden = 16, kOut = 4, kBatch = 8;
constexpr int kModules = 4, kSteps = 2;

nn::Sequential make_mlp(Device device) {
  manual_seed(5);
  nn::Sequential mlp(nn::Linear(kIn, kHidden), nn::Tanh(), nn::Linear(kHidden, kOut), nn::Tanh());
  mlp->to(device);
  return mlp;
}

Batch batch(int step) { return pipeline_test::random_batch(300 + uint64_t(step), kBatch, kIn, kOut, DType::Float32); }

TEST(PipelineExecutorCuda, StagesOnCudaMatchSingleProcessOnTheCpu) {
  if (!cuda::is_available() || cuda::device_count() < dist::local_world_size())
    GTEST_SKIP() << "needs one CUDA device per rank of this host";
  auto group = dist::world();
  const int p = group->size(), rank = group->rank();
  if (p > kModules) GTEST_SKIP() << "needs at most " << kModules << " ranks";
  const Device device = Device::cuda(dist::local_rank() % cuda::device_count());
  // One rank: two stages on it (v = 2); more: one stage per rank.
  dist::Schedule schedule = p == 1 ? dist::interleaved_one_f_one_b(1, 2, 2) : dist::one_f_one_b(p, 2);
  const int num_stages = schedule.num_stages();
  nn::Sequential mlp = make_mlp(device);
  std::vector<nn::Sequential> stages;
  for (int s = rank; s < num_stages; s += p)
    stages.push_back(mlp->slice(int64_t(s) * kModules / num_stages, int64_t(s + 1) * kModules / num_stages));
  optim::SGD optimizer(pipeline_test::parameters_of(stages), optim::SGDOptions{.lr = 0.1});
  dist::PipelineExecutor executor(stages, group, schedule, mse);
  for (int step = 0; step < kSteps; ++step) {
    Batch b = batch(step);
    optimizer.zero_grad();
    Tensor loss = executor.step(ops::to_device(b.x, device), ops::to_device(b.y, device));
    if (loss.defined()) {
      EXPECT_EQ(loss.device(), device);
    }
    optimizer.step();
  }
  const auto want = pipeline_test::trained_single_process(make_mlp(Device::cpu()), kSteps, batch);
  for (auto& stage : stages)
    for (auto& [name, param] : stage->named_parameters()) {
      ASSERT_EQ(param.device(), device) << name;
      ASSERT_TRUE(param.grad().defined()) << name;
      EXPECT_EQ(param.grad().device(), device) << name;
      const std::vector<float> got = ops::to_device(param, Device::cpu()).to_vector<float>();
      const std::vector<float> ref = ops::contiguous(want.at(name)).to_vector<float>();
      ASSERT_EQ(got.size(), ref.size()) << name;
      for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], ref[i], 1e-4 * std::abs(ref[i]) + 1e-5) << name;
    }
}

}  // namespace
}  // namespace braid
