// DistributedDataParallel with uneven inputs: inside a Join, the ranks that run out of batches shadow the others'
// steps and every rank ends with the model one process gets from exactly the batches that ran; without one, the
// rank that leaves early and those still stepping all throw an error naming each rank's step count.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "dist_test_util.h"

namespace braid {
namespace {

using dist::DDPOptions;
using dist::DistributedDataParallel;
using dist::JoinOptions;
using dist_test::error_of;
using dist_test::expect_contains;

constexpr int64_t kIn = 6, kHidden = 10, kOut = 3, kRows = 4;

struct Net : nn::Module {
  nn::Linear fc1 = register_module("fc1", nn::Linear(kIn, kHidden));
  nn::Linear fc2 = register_module("fc2", nn::Linear(kHidden, kOut));
  Tensor forward(const Tensor& x) { return fc2(braid::tanh(fc1(x))); }
};

struct Batch {
  Tensor x, y;
};

// Rank r's batch of step s: the same on every process that asks.
Batch batch_of(int rank, int step) {
  Generator gen(1000 + 37 * uint64_t(step) + uint64_t(rank));
  return {randn({kRows, kIn}, {}, &gen), randn({kRows, kOut}, {}, &gen)};
}

// Rank r has 2 + r batches: every rank a different number.
int steps_of(int rank) { return 2 + rank; }

optim::SGDOptions sgd() { return {.lr = 0.05, .momentum = 0.9}; }

void train_step(Net& model, optim::SGD& optimizer, const Batch& b) {
  optimizer.zero_grad();
  nn::mse_loss(model.forward(b.x), b.y).backward();
  optimizer.step();
}

// One process, every step on the batches of the ranks that still had one, their losses summed and divided by the
// world size or by how many ranks ran that step: what DDP's average is.
void train_reference(Net& reference, int world, bool divide_by_initial_world_size) {
  optim::SGD optimizer(reference.parameters(), sgd());
  for (int s = 0; s < steps_of(world - 1); ++s) {
    optimizer.zero_grad();
    Tensor total;
    int ran = 0;
    for (int r = 0; r < world; ++r) {
      if (s >= steps_of(r)) continue;
      Batch b = batch_of(r, s);
      Tensor l = nn::mse_loss(reference.forward(b.x), b.y);
      total = total.defined() ? total + l : l;
      ++ran;
    }
    (total / double(divide_by_initial_world_size ? world : ran)).backward();
    optimizer.step();
  }
}

void expect_same_params(const nn::Module& got, const nn::Module& want, const std::string& what) {
  auto g = got.named_parameters(), w = want.named_parameters();
  ASSERT_EQ(g.size(), w.size());
  for (size_t i = 0; i < g.size(); ++i) {
    auto a = g[i].second.to_vector<double>(), b = w[i].second.to_vector<double>();
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k)
      ASSERT_NEAR(a[k], b[k], 1e-5 * std::abs(b[k]) + 1e-6)
          << what << ": " << g[i].first << "[" << k << "] on rank " << dist::rank();
  }
}

TEST(DdpJoin, UnevenInputsMatchOneProcessOnTheBatchesThatRan) {
  auto group = dist::world();
  const int world = group->size(), rank = group->rank();
  for (bool divide_by_initial : {true, false}) {
    for (const DDPOptions& options : {DDPOptions{}, DDPOptions{.bucket_cap_bytes = 1, .overlap = false},
                                      DDPOptions{.bucket_cap_bytes = 1, .gradient_as_bucket_view = false}}) {
      SCOPED_TRACE(std::string("divide_by_initial_world_size=") + (divide_by_initial ? "true" : "false") +
                   " buckets=" + std::to_string(options.bucket_cap_bytes) + (options.overlap ? "" : " no overlap"));
      manual_seed(40 + uint64_t(rank));  // the ranks start apart: DDP's broadcast brings them to rank 0's
      Net model;
      manual_seed(40);
      Net reference;
      {
        DistributedDataParallel ddp(model, group, options);
        optim::SGD optimizer(model.parameters(), sgd());
        {
          auto join = ddp.join({.divide_by_initial_world_size = divide_by_initial});
          for (int s = 0; s < steps_of(rank); ++s) train_step(model, optimizer, batch_of(rank, s));
        }
        EXPECT_EQ(ddp.steps(), steps_of(rank));
      }
      train_reference(reference, world, divide_by_initial);
      expect_same_params(model, reference, "after the join");
    }
  }
}

// The Join spelled as PyTorch's Join([ddp]), with finish() called by hand; the same inputs on every rank need no
// shadowing and change nothing.
TEST(DdpJoin, EvenInputsThroughJoinMatchPlainDdp) {
  auto group = dist::world();
  const int rank = group->rank();
  manual_seed(41);
  Net joined;
  manual_seed(41);
  Net plain;
  {
    DistributedDataParallel a(joined, group), b(plain, group);
    optim::SGD oa(joined.parameters(), sgd()), ob(plain.parameters(), sgd());
    dist::Join join({&a});
    for (int s = 0; s < 3; ++s) train_step(joined, oa, batch_of(rank, s));
    join.finish();
    for (int s = 0; s < 3; ++s) train_step(plain, ob, batch_of(rank, s));
  }
  expect_same_params(joined, plain, "joined against plain");
}

TEST(DdpJoin, ThrowOnEarlyTerminationThrowsOnEveryRank) {
  REQUIRE_RANKS(2);
  auto group = dist::world();
  const int rank = group->rank();
  manual_seed(42);
  Net model;
  DistributedDataParallel ddp(model, group);
  optim::SGD optimizer(model.parameters(), sgd());
  std::string msg = error_of([&] {
    auto join = ddp.join({.throw_on_early_termination = true});
    for (int s = 0; s < (rank == 0 ? 1 : 3); ++s) train_step(model, optimizer, batch_of(rank, s));
  });
  expect_contains(msg, "ran out of inputs");
  expect_contains(msg, rank == 0 ? "rank 0 of the group" : "the ranks [0] of the group");
  // Nothing is left half done: the group still sums correctly.
  Tensor t = from_vector(std::vector<float>{1.0f});
  dist::all_reduce(t);
  EXPECT_EQ(t.to_vector<float>(), std::vector<float>{float(group->size())});
}

TEST(DdpJoin, DuplicateOrNoJoinablesAreAnError) {
  Net a;
  DistributedDataParallel ddp(a);
  expect_contains(error_of([&] { dist::Join join({&ddp, &ddp}); }), "is listed twice");
  expect_contains(error_of([&] { dist::Join join(std::vector<dist::Joinable*>{}); }), "at least one joinable");
}

// Without a Join, rank 0 steps once more than the others: the others' wrappers go out of scope while rank 0 waits
// in its gradient all-reduce, and every rank throws, naming each rank's count.
TEST(DdpUnevenWithoutJoin, EveryRankThrowsNamingTheStepCounts) {
  REQUIRE_RANKS(2);
  auto group = dist::world();
  const int world = group->size(), rank = group->rank();
  for (const DDPOptions& options : {DDPOptions{}, DDPOptions{.bucket_cap_bytes = 1}}) {
    SCOPED_TRACE("buckets=" + std::to_string(options.bucket_cap_bytes));
    manual_seed(43);
    Net model;
    std::string msg = error_of([&] {
      DistributedDataParallel ddp(model, group, options);
      optim::SGD optimizer(model.parameters(), sgd());
      for (int s = 0; s < (rank == 0 ? 3 : 2); ++s) train_step(model, optimizer, batch_of(rank, s));
    });
    expect_contains(msg, "different numbers of synchronised steps");
    expect_contains(msg, "rank 0 ran 3 steps (still stepping)");
    for (int r = 1; r < world; ++r)
      expect_contains(msg, "rank " + std::to_string(r) + " ran 2 steps (then its DistributedDataParallel was destroyed)");
    expect_contains(msg, "dist::Join");
    Tensor t = from_vector(std::vector<float>{1.0f});
    dist::all_reduce(t);
    EXPECT_EQ(t.to_vector<float>(), std::vector<float>{float(world)});
  }
}

// Without a Join, the ranks with fewer batches go on to another collective (an evaluation's all-reduce) while rank
// 0 still steps: the default collective check stops every rank, and rank 0's error names its step.
TEST(DdpUnevenWithoutJoin, AnotherCollectiveAfterFewerStepsIsAnErrorOnEveryRank) {
  REQUIRE_RANKS(2);
  auto group = dist::world();
  const int rank = group->rank();
  manual_seed(45);
  Net model;
  std::string msg = error_of([&] {
    DistributedDataParallel ddp(model, group);
    optim::SGD optimizer(model.parameters(), sgd());
    for (int s = 0; s < (rank == 0 ? 3 : 2); ++s) train_step(model, optimizer, batch_of(rank, s));
    Tensor accuracy = from_vector(std::vector<float>{0.5f});
    dist::all_reduce(accuracy);
  });
  if (rank == 0) {
    expect_contains(msg, "the gradient all-reduce of this rank's step 3 failed");
    expect_contains(msg, "dist::Join");
  }
  expect_contains(msg, "all_reduce");
}

// Wrappers destroyed together after the same number of steps say goodbye without an error.
TEST(DdpUnevenWithoutJoin, EvenStepsEndQuietly) {
  manual_seed(44);
  Net model;
  {
    DistributedDataParallel ddp(model);
    optim::SGD optimizer(model.parameters(), sgd());
    for (int s = 0; s < 2; ++s) train_step(model, optimizer, batch_of(dist::rank(), s));
    EXPECT_EQ(ddp.steps(), 2);
  }
  SUCCEED();
}

}  // namespace
}  // namespace braid
