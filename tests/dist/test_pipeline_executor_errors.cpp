// The pipeline executor's first step fails on every rank, with one message naming the stage, its rank and the
// original error, whatever the stage that failed: its input's shape, the loss on the last stage, any throw in a
// forward, a batch that M does not divide. Before, the other ranks waited until BRAID_DIST_TIMEOUT (a hang fails
// these tests through that timeout). Two stages per rank, so the failure also travels between a rank's stages.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <vector>

#include "braid/dist/pipeline_executor.h"
#include "dist_test_util.h"
#include "pipeline_test_util.h"

namespace braid {
namespace {

using dist::PipelineExecutor;
using dist::Schedule;
using pipeline_test::mse;

constexpr int64_t kWidth = 16;

struct ThrowingModule : nn::Module {
  Tensor forward(const Tensor&) { BRAID_FAIL("deliberate failure in the stage's forward"); }
};

enum class Fault { None, WrongInputWidth, ThrowingForward };

// Linear(kWidth, kWidth) and Tanh, or the fault on the stage `faulty`.
nn::Sequential make_stage(int stage, int faulty, Fault fault) {
  nn::Sequential s;
  const bool wrong_width = stage == faulty && fault == Fault::WrongInputWidth;
  s->push_back(nn::Linear(wrong_width ? kWidth + 4 : kWidth, kWidth));
  s->push_back(nn::Tanh());
  if (stage == faulty && fault == Fault::ThrowingForward) s->push_back(std::make_shared<ThrowingModule>());
  return s;
}

struct Run {
  int faulty = -1;
  Fault fault = Fault::None;
  int64_t target_width = kWidth;
  int64_t batch = 0;  // 0: two rows per micro-batch
  bool data_everywhere = true;
};

// One step of interleaved 1F1B (2p stages, M = 2p) on the world; returns this rank's error message.
std::string first_step_error(const Run& run) {
  auto group = dist::world();
  const int p = group->size(), rank = group->rank();
  Schedule schedule = dist::interleaved_one_f_one_b(p, 2, 2 * p);
  std::vector<nn::Sequential> stages;
  for (int s = rank; s < 2 * p; s += p) stages.push_back(make_stage(s, run.faulty, run.fault));
  PipelineExecutor executor(stages, group, schedule, mse);
  manual_seed(3);
  const int64_t batch = run.batch > 0 ? run.batch : 4 * p;
  Tensor x = randn({batch, kWidth}), y = randn({batch, run.target_width});
  const bool first = rank == 0, last = rank == p - 1;
  return dist_test::error_of(
      [&] { executor.step(run.data_everywhere || first ? x : Tensor(), run.data_everywhere || last ? y : Tensor()); });
}

std::string failed_at(int stage, int rank) {
  return "PipelineExecutor: stage " + std::to_string(stage) + " failed on rank " + std::to_string(rank) +
         " at the first step: ";
}

TEST(PipelineExecutorErrors, MismatchedActivationShapesFailOnEveryRank) {
  const int p = dist::world_size();
  const std::string message = first_step_error({.faulty = 1, .fault = Fault::WrongInputWidth});
  dist_test::expect_contains(message, failed_at(1, 1 % p) + "linear: input [2, 16] does not end in in_features = 20");
}

TEST(PipelineExecutorErrors, LossRejectingTheTargetFailsOnEveryRank) {
  const int p = dist::world_size();
  const std::string message = first_step_error({.target_width = kWidth + 1});
  dist_test::expect_contains(message, failed_at(2 * p - 1, p - 1) + "mse_loss: input [2, 16] and target [2, 17]");
}

// Stage p is rank 0's second stage: the failure reaches the ranks after it, and those before it, through the
// agreement at the end of the check pass.
TEST(PipelineExecutorErrors, ThrowingForwardFailsOnEveryRank) {
  const int p = dist::world_size();
  const std::string message = first_step_error({.faulty = p, .fault = Fault::ThrowingForward});
  dist_test::expect_contains(message, failed_at(p, 0) + "deliberate failure in the stage's forward");
}

// Only stage 0's rank has the input and only the last stage's rank the target, so only they can see the bad batch.
TEST(PipelineExecutorErrors, BatchNotDivisibleFailsOnEveryRankNotOnlyTheOnesGivenIt) {
  const int p = dist::world_size();
  const std::string message = first_step_error({.batch = 4 * p + 1, .data_everywhere = false});
  dist_test::expect_contains(message, failed_at(0, 0) + "PipelineExecutor::step: the input's batch size " +
                                          std::to_string(4 * p + 1) + " is not divisible by the number of " +
                                          "micro-batches " + std::to_string(2 * p));
}

// A failed check pass leaves nothing behind: the next step with good data checks again and trains.
TEST(PipelineExecutorErrors, StepAfterAFailedFirstStepRuns) {
  auto group = dist::world();
  const int p = group->size(), rank = group->rank();
  std::vector<nn::Sequential> stages;
  for (int s = rank; s < 2 * p; s += p) stages.push_back(make_stage(s, -1, Fault::None));
  PipelineExecutor executor(stages, group, dist::interleaved_one_f_one_b(p, 2, p), mse);
  manual_seed(3);
  Tensor x = randn({2 * p, kWidth}), y = randn({2 * p, kWidth}), bad_y = randn({2 * p, kWidth + 1});
  dist_test::error_of([&] { executor.step(x, bad_y); });
  Tensor loss = executor.step(x, y);
  EXPECT_EQ(loss.defined(), rank == p - 1);
  if (loss.defined()) {
    EXPECT_GT(loss.item<float>(), 0.0f);
  }
}

}  // namespace
}  // namespace braid
