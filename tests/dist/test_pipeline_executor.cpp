// The pipeline executor against one process: every rank builds the same MLP, keeps its stages, and trains them
// through a schedule on the world; after the SGD steps each stage's parameters must equal those of the unsplit
// model trained on the full batch. Runs at any world size (one stage per rank, or two with interleaving), each
// schedule both with tags and without (PipelineExecutorOptions::in_order_p2p: one batch per run of sends and
// receives, matched in order, as over NCCL).
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <string>
#include <vector>

#include "braid/dist/pipeline_executor.h"
#include "dist_test_util.h"
#include "pipeline_test_util.h"

namespace braid {
namespace {

using dist::PipelineExecutor;
using dist::Schedule;
using pipeline_test::Batch;
using pipeline_test::mse;

constexpr int64_t kIn = 8, kHidden = 16, kOut = 4, kBatch = 8;
constexpr int kLayers = 8;  // four Linear + Tanh pairs
constexpr int kSteps = 2;

// With leading_tanh the model starts with a layer without parameters, which becomes a stage of its own.
nn::Sequential make_mlp(bool leading_tanh = false) {
  manual_seed(11);
  nn::Sequential mlp;
  if (leading_tanh) mlp->push_back(nn::Tanh());
  for (int64_t in : {kIn, kHidden, kHidden}) {
    mlp->push_back(nn::Linear(in, kHidden));
    mlp->push_back(nn::Tanh());
  }
  mlp->push_back(nn::Linear(kHidden, kOut));
  mlp->push_back(nn::Tanh());
  mlp->to(DType::Float64);
  return mlp;
}

Batch batch(int step) { return pipeline_test::random_batch(100 + uint64_t(step), kBatch, kIn, kOut); }

// Stage s of S holds the MLP's layers [s * L / S, (s + 1) * L / S); a leading Tanh is stage 0 alone (S >= 2) and
// the MLP is split over the other S - 1.
int64_t stage_begin(int s, int num_stages, bool leading_tanh) {
  if (!leading_tanh) return int64_t(s) * kLayers / num_stages;
  return s == 0 ? 0 : 1 + int64_t(s - 1) * kLayers / (num_stages - 1);
}

std::vector<nn::Sequential> my_stages(const nn::Sequential& mlp, int num_stages, int rank, int world,
                                      bool leading_tanh = false) {
  std::vector<nn::Sequential> stages;
  for (int s = rank; s < num_stages; s += world)
    stages.push_back(
        mlp->slice(stage_begin(s, num_stages, leading_tanh), stage_begin(s + 1, num_stages, leading_tanh)));
  return stages;
}

std::map<std::string, Tensor> reference_after_training(bool leading_tanh) {
  return pipeline_test::trained_single_process(make_mlp(leading_tanh), kSteps, batch);
}

// Trains this rank's stages through `schedule` and compares them with the reference.
void expect_matches_single_process_with(const Schedule& schedule, bool leading_tanh,
                                        dist::PipelineExecutorOptions options) {
  SCOPED_TRACE("ranks " + std::to_string(schedule.num_ranks) + ", stages per rank " +
               std::to_string(schedule.stages_per_rank) + ", micro-batches " +
               std::to_string(schedule.num_microbatches) + (options.in_order_p2p ? ", in order" : ", tagged"));
  auto group = dist::world();
  const int rank = group->rank(), world = group->size();
  nn::Sequential mlp = make_mlp(leading_tanh);
  std::vector<nn::Sequential> stages = my_stages(mlp, schedule.num_stages(), rank, world, leading_tanh);
  optim::SGD optimizer(pipeline_test::parameters_of(stages), optim::SGDOptions{.lr = 0.1});
  PipelineExecutor executor(stages, group, schedule, mse, options);
  const bool last = schedule.rank_of_stage(schedule.num_stages() - 1) == rank;
  for (int step = 0; step < kSteps; ++step) {
    Batch b = batch(step);
    optimizer.zero_grad();
    Tensor loss = executor.step(b.x, b.y);
    EXPECT_EQ(loss.defined(), last);
    if (last && step == 0) {
      nn::Sequential whole = make_mlp(leading_tanh);  // before any update the loss is the unsplit model's
      EXPECT_NEAR(loss.item<double>(), mse(whole->forward(b.x), b.y).item<double>(), 1e-12);
    }
    optimizer.step();
  }
  EXPECT_EQ(executor.in_order_p2p(), options.in_order_p2p);  // CPU stages: MPI, with tags unless asked
  const dist::PipelineStepStats& stats = executor.last_step_stats();
  EXPECT_GT(stats.compute, 0.0);
  EXPECT_GE(stats.wait, 0.0);
  EXPECT_LE(stats.compute + stats.wait, stats.step);
  EXPECT_EQ(executor.peak_in_flight(), dist::validate(schedule).peak_in_flight[size_t(rank)]);
  pipeline_test::expect_stages_match(stages, reference_after_training(leading_tanh));
}

void expect_matches_single_process(const Schedule& schedule, bool leading_tanh = false) {
  for (bool in_order : {false, true})
    expect_matches_single_process_with(schedule, leading_tanh, {.in_order_p2p = in_order});
}

const int kMicrobatches[] = {1, 2, 4, 8};

TEST(PipelineExecutor, GPipeMatchesSingleProcess) {
  for (int m : kMicrobatches) expect_matches_single_process(dist::gpipe(dist::world_size(), m));
}

TEST(PipelineExecutor, OneFOneBMatchesSingleProcess) {
  for (int m : kMicrobatches) expect_matches_single_process(dist::one_f_one_b(dist::world_size(), m));
}

TEST(PipelineExecutor, ZeroBubbleH1MatchesSingleProcess) {
  for (int m : kMicrobatches) expect_matches_single_process(dist::zero_bubble_h1(dist::world_size(), m));
}

// Two stages per rank; interleaving needs M a multiple of the rank count.
TEST(PipelineExecutor, InterleavedMatchesSingleProcess) {
  const int p = dist::world_size();
  if (2 * p > kLayers) GTEST_SKIP() << "needs at most " << kLayers / 2 << " ranks";
  int ran = 0;
  for (int m : kMicrobatches)
    if (m % p == 0 && kBatch % m == 0) {
      expect_matches_single_process(dist::interleaved_one_f_one_b(p, 2, m));
      ++ran;
    }
  if (ran == 0) GTEST_SKIP() << "no micro-batch count in {1, 2, 4, 8} is a multiple of " << p;
}

// A schedule read back from its CSV form, compute order only, with the communication added by with_communication():
// the executor runs what a user writes.
TEST(PipelineExecutor, RunsAScheduleWrittenAsCsv) {
  Schedule zb = dist::zero_bubble_h1(dist::world_size(), 4);
  for (auto& actions : zb.actions)
    std::erase_if(actions, [](const dist::Action& a) { return !dist::is_compute(a.kind); });
  expect_matches_single_process(dist::with_communication(dist::from_csv(dist::to_csv(zb))));
}

// Stage 0 is a Tanh: its input needs no gradient and it has no parameters, so its backward has nothing to do.
TEST(PipelineExecutor, RunsAFirstStageWithoutParameters) {
  REQUIRE_RANKS(2);
  const int p = dist::world_size();
  for (int m : {1, 4}) {
    expect_matches_single_process(dist::gpipe(p, m), true);
    expect_matches_single_process(dist::zero_bubble_h1(p, m), true);
  }
}

TEST(PipelineExecutor, RejectsBatchNotDivisibleByMicrobatches) {
  auto group = dist::world();
  Schedule schedule = dist::one_f_one_b(group->size(), 3);
  nn::Sequential mlp = make_mlp();
  PipelineExecutor executor(my_stages(mlp, schedule.num_stages(), group->rank(), group->size()), group, schedule, mse);
  Batch b = batch(0);  // 8 rows, on every rank
  std::string message = dist_test::error_of([&] { executor.step(b.x, b.y); });
  dist_test::expect_contains(message, "batch size 8");
  dist_test::expect_contains(message, "number of micro-batches 3");
}

// Activation shapes are exchanged at the first step only, so a later batch of another size is refused on every rank
// that is given it, before anything is sent.
TEST(PipelineExecutor, RejectsBatchSizeChangedAfterFirstStep) {
  auto group = dist::world();
  Schedule schedule = dist::one_f_one_b(group->size(), 2);
  nn::Sequential mlp = make_mlp();
  PipelineExecutor executor(my_stages(mlp, schedule.num_stages(), group->rank(), group->size()), group, schedule, mse);
  Batch b = batch(0);
  executor.step(b.x, b.y);
  Tensor half_x = ops::narrow(b.x, 0, 0, 4), half_y = ops::narrow(b.y, 0, 0, 4);
  std::string message = dist_test::error_of([&] { executor.step(half_x, half_y); });
  dist_test::expect_contains(message, "batch size 4 differs from the first step's 8");
}

TEST(PipelineExecutor, RejectsMoreMessagesThanMpiTags) {
  auto group = dist::world();
  Schedule schedule = dist::gpipe(group->size(), 20000);
  nn::Sequential mlp = make_mlp();
  std::string message = dist_test::error_of(
      [&] { PipelineExecutor(my_stages(mlp, group->size(), group->rank(), group->size()), group, schedule, mse); });
  dist_test::expect_contains(message, "20000 micro-batches need message tags up to");
  dist_test::expect_contains(message, "more than the 32767 every MPI provides");
}

// The in-order transport needs a schedule that passes validate(..., InOrder): asked for it, the constructor refuses
// one that does not, on every rank.
TEST(PipelineExecutor, InOrderRefusesAScheduleThatNeedsTags) {
  REQUIRE_RANKS(2);
  auto group = dist::world();
  Schedule schedule = dist::gpipe(group->size(), 2);
  auto& rank1 = schedule.actions[1];
  const dist::Action recv1{dist::ActionKind::RecvActivation, 1, 1};
  rank1.erase(std::find(rank1.begin(), rank1.end(), recv1));
  rank1.insert(rank1.begin(), recv1);
  nn::Sequential mlp = make_mlp();
  auto stages = my_stages(mlp, group->size(), group->rank(), group->size());
  PipelineExecutor tagged(stages, group, schedule, mse);  // fine with tags
  std::string message =
      dist_test::error_of([&] { PipelineExecutor(stages, group, schedule, mse, {.in_order_p2p = true}); });
  dist_test::expect_contains(message, "in-order transport");
  dist_test::expect_contains(message, "rank 1, action 0 (1RECV_F1)");
}

// The first step's check pass runs the stage in eval mode: a dropout layer draws no random numbers there, so the
// first step's masks are those of the same micro-batches run by hand, and the stage is in training mode after.
TEST(PipelineExecutor, FirstStepCheckDrawsNoRandomNumbers) {
  if (dist::world_size() != 1) GTEST_SKIP() << "compares one rank's dropout masks with a run by hand";
  auto make_stage = [] {
    manual_seed(5);
    nn::Sequential stage;
    stage->push_back(nn::Linear(kIn, kOut));
    stage->push_back(nn::Dropout(0.5));
    stage->to(DType::Float64);
    return stage;
  };
  Batch b = batch(0);
  nn::Sequential piped = make_stage(), by_hand = make_stage();
  PipelineExecutor executor({piped}, dist::world(), dist::gpipe(1, 2), mse);
  manual_seed(9);
  executor.step(b.x, b.y);
  manual_seed(9);
  for (int64_t m = 0; m < 2; ++m) {
    Tensor x = ops::narrow(b.x, 0, m * kBatch / 2, kBatch / 2), y = ops::narrow(b.y, 0, m * kBatch / 2, kBatch / 2);
    (mse(by_hand->forward(x), y) * 0.5).backward();
  }
  EXPECT_TRUE(piped->is_training());
  EXPECT_TRUE(piped[1]->is_training());
  auto want = by_hand->named_parameters();
  auto got = piped->named_parameters();
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i)
    pipeline_test::expect_close(got[i].second.grad(), want[i].second.grad(), 1e-5, got[i].first);
}

TEST(PipelineExecutor, RejectsStageCountNotMatchingGroup) {
  auto group = dist::world();
  nn::Sequential mlp = make_mlp();
  Schedule wrong_ranks = dist::gpipe(group->size() + 1, 2);
  std::string message = dist_test::error_of(
      [&] { PipelineExecutor(my_stages(mlp, group->size(), group->rank(), group->size()), group, wrong_ranks, mse); });
  dist_test::expect_contains(message, "the schedule is for " + std::to_string(group->size() + 1) + " ranks");
  dist_test::expect_contains(message, "the pipeline group has " + std::to_string(group->size()));

  Schedule two_per_rank = dist::interleaved_one_f_one_b(group->size(), 2, group->size());
  message = dist_test::error_of(
      [&] { PipelineExecutor(my_stages(mlp, group->size(), group->rank(), group->size()), group, two_per_rank, mse); });
  dist_test::expect_contains(message, "holds 1 stages, the schedule places 2 on each rank");
}

}  // namespace
}  // namespace braid
