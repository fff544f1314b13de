// dist::Pipeline, the model-level front of pipeline parallelism: splitting a Sequential by parameter count, the
// schedule names, training through Pipeline against one process, forward() against the unsplit model, and the
// errors every rank must throw alike. Runs at any world size (one stage per rank, or two with interleaving).
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "braid/dist/pipeline.h"
#include "dist_test_util.h"
#include "pipeline_test_util.h"

namespace braid {
namespace {

using dist::Pipeline;
using dist::PipelineOptions;
using dist::ScheduleKind;
using dist_test::error_of;
using dist_test::expect_contains;
using pipeline_test::Batch;
using pipeline_test::expect_close;
using pipeline_test::mse;

constexpr int64_t kWidth = 8, kBatch = 24;
constexpr int kPairs = 8;  // Linear + Tanh pairs: 16 modules, enough for 2 stages on each of 4 ranks
constexpr int kSteps = 3;

nn::Sequential make_mlp() {
  manual_seed(23);
  nn::Sequential mlp;
  for (int i = 0; i < kPairs; ++i) {
    mlp->push_back(nn::Linear(kWidth, kWidth));
    mlp->push_back(nn::Tanh());
  }
  mlp->to(DType::Float64);
  return mlp;
}

Batch batch(int step, int64_t size = kBatch) {
  return pipeline_test::random_batch(300 + uint64_t(step), size, kWidth, kWidth);
}

// Trains `pipe` for kSteps and compares every parameter this rank holds with the unsplit model's.
void expect_trains_like_single_process(Pipeline& pipe) {
  optim::SGD optimizer(pipe.parameters(), optim::SGDOptions{.lr = 0.1});
  for (int step = 0; step < kSteps; ++step) {
    Batch b = batch(step);
    optimizer.zero_grad();
    Tensor loss = pipe.step(b.x, b.y);
    ASSERT_EQ(loss.defined(), pipe.holds_last_stage());
    if (loss.defined() && step == 0) {
      EXPECT_NEAR(loss.item<double>(), mse(make_mlp()->forward(b.x), b.y).item<double>(), 1e-12);
    }
    optimizer.step();
  }
  auto want = pipeline_test::trained_single_process(make_mlp(), kSteps, [](int step) { return batch(step); });
  auto mine = pipe.named_parameters();
  ASSERT_FALSE(mine.empty());
  for (auto& [name, p] : mine) {
    ASSERT_TRUE(want.count(name)) << name;
    expect_close(p, want[name], 1e-5, name);
  }
}

// Sizes of the stages, in modules.
std::vector<size_t> module_counts(const std::vector<nn::Sequential>& stages) {
  std::vector<size_t> counts;
  for (const auto& s : stages) counts.push_back(s->size());
  return counts;
}

// One huge layer among small ones: [small, relu, huge, relu, small, relu, small, relu].
nn::Sequential model_with_one_huge_layer() {
  return nn::Sequential(nn::Linear(4, 4), nn::ReLU(), nn::Linear(100, 100), nn::ReLU(), nn::Linear(4, 4), nn::ReLU(),
                        nn::Linear(4, 4), nn::ReLU());
}

TEST(PipelineSplit, GivesTheHugeLayerItsOwnStage) {
  nn::Sequential model = model_with_one_huge_layer();
  // Parameter counts 20, 10100, 20, 20: two stages cut right after the huge layer (its ReLU stays with it) ...
  EXPECT_EQ(module_counts(dist::split_by_parameter_count(model, 2)), (std::vector<size_t>{4, 4}));
  // ... three give it a stage alone, and the small layers share the rest.
  EXPECT_EQ(module_counts(dist::split_by_parameter_count(model, 3)), (std::vector<size_t>{2, 2, 4}));
  EXPECT_EQ(module_counts(dist::split_by_parameter_count(model, 4)), (std::vector<size_t>{2, 2, 2, 2}));
  EXPECT_EQ(module_counts(dist::split_by_parameter_count(model, 8)), (std::vector<size_t>(8, 1)));
  EXPECT_EQ(module_counts(dist::split_by_parameter_count(model, 1)), (std::vector<size_t>{8}));
}

TEST(PipelineSplit, BalancesEqualLayersAndSharesTheModelsParameters) {
  nn::Sequential model = make_mlp();
  auto stages = dist::split_by_parameter_count(model, 4);
  EXPECT_EQ(module_counts(stages), (std::vector<size_t>{4, 4, 4, 4}));
  auto named = stages[1]->named_parameters();
  ASSERT_EQ(named.size(), 4u);
  EXPECT_EQ(named[0].first, "4.weight");  // the full model's names
  EXPECT_EQ(named[0].second.raw_data(), model->named_parameters()[4].second.raw_data());
}

TEST(PipelineSplit, RefusesMoreStagesThanModules) {
  nn::Sequential model = model_with_one_huge_layer();
  expect_contains(error_of([&] { dist::split_by_parameter_count(model, 9); }),
                  "cannot split a model of 8 modules into 9 stages");
  expect_contains(error_of([&] { dist::split_by_parameter_count(model, 0); }), "at least 1, got 0");
}

TEST(PipelineScheduleKind, ParsesItsNamesAndListsThemOnError) {
  for (ScheduleKind kind :
       {ScheduleKind::GPipe, ScheduleKind::OneFOneB, ScheduleKind::Interleaved, ScheduleKind::ZeroBubble})
    EXPECT_EQ(dist::parse_schedule_kind(dist::to_string(kind)), kind);
  EXPECT_EQ(dist::parse_schedule_kind("zb"), ScheduleKind::ZeroBubble);
  expect_contains(error_of([] { dist::parse_schedule_kind("pipedream"); }),
                  "unknown pipeline schedule 'pipedream', expected gpipe, 1f1b, interleaved or zb");
}

TEST(PipelineScheduleKind, MakeScheduleBuildsTheProvidedSchedules) {
  EXPECT_EQ(dist::make_schedule(ScheduleKind::GPipe, 3, 1, 4), dist::gpipe(3, 4));
  EXPECT_EQ(dist::make_schedule(ScheduleKind::OneFOneB, 3, 1, 4), dist::one_f_one_b(3, 4));
  EXPECT_EQ(dist::make_schedule(ScheduleKind::Interleaved, 2, 2, 4), dist::interleaved_one_f_one_b(2, 2, 4));
  EXPECT_EQ(dist::make_schedule(ScheduleKind::Interleaved, 3, 1, 5), dist::one_f_one_b(3, 5));
  EXPECT_EQ(dist::make_schedule(ScheduleKind::ZeroBubble, 4, 1, 8), dist::zero_bubble_h1(4, 8));
  expect_contains(error_of([] { dist::make_schedule(ScheduleKind::GPipe, 2, 2, 4); }),
                  "2 virtual stages per rank need the interleaved schedule; gpipe runs one stage per rank");
}

TEST(Pipeline, SplitModelTrainsLikeSingleProcess) {
  const int p = dist::world_size();
  Pipeline pipe(make_mlp(), dist::world(), {.schedule = ScheduleKind::OneFOneB, .microbatches = 4}, mse);
  EXPECT_EQ(pipe.schedule(), dist::one_f_one_b(p, 4));
  ASSERT_EQ(pipe.stages().size(), 1u);
  if (kPairs % p == 0) {
    EXPECT_EQ(pipe.stages()[0]->size(), size_t(2 * kPairs / p)) << "equal layers split evenly";
  }
  expect_trains_like_single_process(pipe);
}

// The executor's options reach it: sends and receives matched in order, as over NCCL.
TEST(Pipeline, InOrderTransportTrainsLikeSingleProcess) {
  Pipeline pipe(make_mlp(), dist::world(),
                {.schedule = ScheduleKind::ZeroBubble, .microbatches = 4, .executor = {.in_order_p2p = true}}, mse);
  expect_trains_like_single_process(pipe);
}

// The stage list given by hand, two stages per rank, interleaved (M a multiple of p).
TEST(Pipeline, StageListTrainsLikeSingleProcessInterleaved) {
  const int p = dist::world_size(), rank = dist::rank();
  nn::Sequential mlp = make_mlp();
  std::vector<nn::Sequential> stages;
  for (int s = 0; s < 2 * p; ++s)
    stages.push_back(mlp->slice(2 * kPairs * s / (2 * p), 2 * kPairs * (s + 1) / (2 * p)));
  Pipeline pipe(stages, dist::world(), {.schedule = ScheduleKind::Interleaved, .microbatches = p, .virtual_stages = 2},
                mse);
  ASSERT_EQ(pipe.stages().size(), 2u);
  EXPECT_EQ(pipe.stages()[1].ptr(), stages[size_t(rank + p)].ptr()) << "stage s on rank s % p";
  EXPECT_EQ(pipe.holds_last_stage(), rank == p - 1);
  expect_trains_like_single_process(pipe);
}

TEST(Pipeline, ForwardEqualsTheUnsplitModelAtAnyBatchSize) {
  const int p = dist::world_size();
  Pipeline pipe(make_mlp(), dist::world(), {.schedule = ScheduleKind::GPipe, .microbatches = 2}, mse);
  nn::Sequential whole = make_mlp();
  for (int64_t size : {int64_t(5), int64_t(1), kBatch}) {
    Tensor x = batch(7, size).x;
    Tensor out = pipe.forward(x);
    ASSERT_EQ(out.defined(), dist::rank() == p - 1);
    if (out.defined()) {
      EXPECT_FALSE(out.requires_grad());
      expect_close(out, whole->forward(x), 1e-12, "forward, batch " + std::to_string(size));
    }
  }
  // A training step between two forwards leaves forward() working.
  Batch b = batch(0);
  pipe.step(b.x, b.y);
  Tensor out = pipe.forward(b.x);
  EXPECT_EQ(out.defined(), dist::rank() == p - 1);
}

TEST(Pipeline, RefusesAStageListOfTheWrongLength) {
  const int p = dist::world_size();
  nn::Sequential mlp = make_mlp();
  std::vector<nn::Sequential> stages{mlp->slice(0, 2), mlp->slice(2, 4), mlp->slice(4, 6)};
  if (p == 3) stages.pop_back();
  const std::string error = error_of([&] { Pipeline(stages, dist::world(), {}, mse); });
  expect_contains(error, "Pipeline: the model has " + std::to_string(stages.size()) + " stages");
  expect_contains(error, "a pipeline group of " + std::to_string(p) + " ranks with 1 virtual stages per rank needs " +
                             std::to_string(p));
}

TEST(Pipeline, RefusesAModelTooSmallToSplit) {
  const int p = dist::world_size();
  nn::Sequential tiny(nn::Linear(2, 2));
  expect_contains(error_of([&] {
                    Pipeline(tiny, dist::world(), {.schedule = ScheduleKind::Interleaved, .virtual_stages = 2}, mse);
                  }),
                  "cannot split a model of 1 modules into " + std::to_string(2 * p) + " stages");
}

// Only rank 0 passes the input and only the last rank the target, as a program would: the other ranks cannot see
// the bad batch, and must still throw the same error instead of waiting for activations.
TEST(Pipeline, BatchNotDivisibleByMicrobatchesFailsOnEveryRank) {
  const int p = dist::world_size(), rank = dist::rank();
  Pipeline pipe(make_mlp(), dist::world(), {.microbatches = 4}, mse);
  Batch b = batch(0, 6);
  const std::string error = error_of([&] { pipe.step(rank == 0 ? b.x : Tensor(), rank == p - 1 ? b.y : Tensor()); });
  expect_contains(error, "Pipeline::step: rank 0's batch size 6 is not divisible by the number of micro-batches 4");
  // Nothing was left half-sent: a good step still runs.
  Batch good = batch(0);
  EXPECT_EQ(pipe.step(good.x, good.y).defined(), rank == p - 1);
}

TEST(Pipeline, MissingInputOrChangedBatchFailsOnEveryRank) {
  const int p = dist::world_size(), rank = dist::rank();
  Pipeline pipe(make_mlp(), dist::world(), {.microbatches = 2}, mse);
  Batch b = batch(0);
  expect_contains(error_of([&] { pipe.step(Tensor(), b.y); }),
                  "Pipeline::step: rank 0 holds stage 0 and was given no input");
  pipe.step(b.x, b.y);
  Batch other = batch(1, 12);
  // (As one process, rank 0 passes both; its target then has the new size too.)
  expect_contains(
      error_of([&] { pipe.step(rank == 0 ? other.x : Tensor(), rank == p - 1 ? (p == 1 ? other.y : b.y) : Tensor()); }),
      "Pipeline::step: rank 0's batch size 12 differs from the first step's 24");
  if (p > 1)
    expect_contains(error_of([&] { pipe.step(b.x, rank == p - 1 ? Tensor() : b.y); }),
                    "Pipeline::step: rank " + std::to_string(p - 1) + " holds the last stage and was given no target");
}

// The last stage expects 20 features and the others give 8: every rank throws, naming the stage and its rank.
TEST(Pipeline, ForwardErrorInAStageFailsOnEveryRank) {
  const int p = dist::world_size();
  std::vector<nn::Sequential> stages;
  for (int s = 0; s + 1 < p; ++s) stages.push_back(nn::Sequential(nn::Linear(kWidth, kWidth)));
  stages.push_back(nn::Sequential(nn::Linear(20, 4)));
  for (auto& s : stages) s->to(DType::Float64);
  Pipeline pipe(stages, dist::world(), {}, mse);
  const std::string error = error_of([&] { pipe.forward(batch(0).x); });
  expect_contains(error, "Pipeline::forward: stage " + std::to_string(p - 1) + " of " + std::to_string(p) +
                             " on rank " + std::to_string(p - 1) + " failed: ");
  expect_contains(error, "20");
  // The failure consumed every message: a good forward still works.
  Pipeline good(make_mlp(), dist::world(), {}, mse);
  EXPECT_EQ(good.forward(batch(0).x).defined(), dist::rank() == p - 1);
}

}  // namespace
}  // namespace braid
