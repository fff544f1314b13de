// Ranks that call a collective (or new_group) with different arguments get a braid::Error on every rank naming each
// rank and what it passed, the mismatched collective does not run, and the group stays usable: by default (the
// fingerprint check; dist.npN) and in debug mode (BRAID_DIST_DEBUG=1, the whole records; dist.safety.npN runs
// --gtest_filter=Safety*). SafetyDebug: send/recv pairs, which only debug mode checks; they skip without it.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>
#include <thread>

#include "braid/core/creation.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"
#include "dist_test_util.h"

namespace {

using braid::DType;
using braid::Tensor;
using braid::dist::ReduceOp;

bool debug_mode() {
  const char* v = std::getenv("BRAID_DIST_DEBUG");
  return v && std::string(v) != "0" && std::string(v) != "";
}

#define REQUIRE_TWO_RANKS()                                             \
  do {                                                                  \
    if (braid::dist::world_size() < 2) GTEST_SKIP() << "needs 2 ranks"; \
  } while (0)

#define REQUIRE_DEBUG_AND_RANKS()                                       \
  do {                                                                  \
    if (!debug_mode()) GTEST_SKIP() << "runs with BRAID_DIST_DEBUG=1";  \
    if (braid::dist::world_size() < 2) GTEST_SKIP() << "needs 2 ranks"; \
  } while (0)

using braid::dist_test::error_of;
using braid::dist_test::expect_contains;

// A matched collective afterwards proves the group is still in step on every rank.
void expect_group_still_works() {
  auto world = braid::dist::world();
  Tensor one = braid::ones({2});
  world->all_reduce(one)->wait();
  EXPECT_EQ(one.to_vector<float>()[1], float(world->size()));
}

}  // namespace

TEST(Safety, ShapeMismatchThrowsOnEveryRankNamingEachRank) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  Tensor t = braid::full({4 + r}, 1.0);
  std::string msg = error_of([&] { world->all_reduce(t)->wait(); });
  expect_contains(msg, "all_reduce: ranks disagree");
  for (int k = 0; k < world->size(); ++k)
    expect_contains(msg,
                    "rank " + std::to_string(k) + " passed all_reduce(sum, [" + std::to_string(4 + k) + "] float32)");
  // The mismatched all_reduce did not run.
  EXPECT_EQ(t.to_vector<float>()[0], 1.0f);
  expect_group_still_works();
}

// The blocking form runs the check on the calling thread: the same message, and the group stays in step.
TEST(Safety, BlockingCallMismatchThrowsTheSameWay) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  Tensor t = braid::full({4 + r}, 1.0);
  std::string msg = error_of([&] { braid::dist::all_reduce(t); });
  expect_contains(msg, "all_reduce: ranks disagree");
  for (int k = 0; k < world->size(); ++k)
    expect_contains(msg,
                    "rank " + std::to_string(k) + " passed all_reduce(sum, [" + std::to_string(4 + k) + "] float32)");
  EXPECT_EQ(t.to_vector<float>()[0], 1.0f);
  msg = error_of([&] { braid::dist::broadcast(t, r == 0 ? 0 : 1); });
  expect_contains(msg, "broadcast: ranks disagree");
  expect_group_still_works();
}

TEST(Safety, DtypeAndReduceOpMismatches) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  Tensor t = braid::ones({3}, r == 1 ? DType::Float64 : DType::Float32);
  std::string msg = error_of([&] { world->all_reduce(t)->wait(); });
  expect_contains(msg, "rank 0 passed all_reduce(sum, [3] float32)");
  expect_contains(msg, "rank 1 passed all_reduce(sum, [3] float64)");

  Tensor u = braid::ones({3});
  msg = error_of([&] { world->all_reduce(u, r == 0 ? ReduceOp::Max : ReduceOp::Sum)->wait(); });
  expect_contains(msg, "rank 0 passed all_reduce(max, [3] float32)");
  expect_contains(msg, "rank 1 passed all_reduce(sum, [3] float32)");
  expect_group_still_works();
}

TEST(Safety, DifferentOperationsAndRoots) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  Tensor t = braid::ones({2, 2});
  std::string msg = error_of([&] { (r == 0 ? world->broadcast(t, 0) : world->all_reduce(t))->wait(); });
  expect_contains(msg, "rank 0 passed broadcast([2, 2] float32, root 0)");
  expect_contains(msg, "rank 1 passed all_reduce(sum, [2, 2] float32)");

  msg = error_of([&] { world->broadcast(t, r == 1 ? 1 : 0)->wait(); });
  expect_contains(msg, "broadcast: ranks disagree");
  expect_contains(msg, "rank 1 passed broadcast([2, 2] float32, root 1)");
  expect_group_still_works();
}

TEST(Safety, AllGatherAndReduceScatterShapes) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  int64_t chunk = r == 0 ? 2 : 3;
  std::string msg = error_of([&] { world->all_gather(braid::zeros({n * chunk}), braid::zeros({chunk}))->wait(); });
  expect_contains(msg, "rank 0 passed all_gather([2] float32 -> [" + std::to_string(2 * n) + "] float32)");
  msg = error_of([&] { world->reduce_scatter(braid::zeros({chunk}), braid::zeros({n * chunk}))->wait(); });
  expect_contains(msg, "reduce_scatter: ranks disagree");
  expect_contains(msg, "rank 1 passed reduce_scatter(sum, [" + std::to_string(3 * n) + "] float32 -> [3] float32)");
  expect_group_still_works();
}

TEST(Safety, MatchingCallsPass) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int n = world->size();
  Tensor t = braid::ones({5}, DType::Int64);
  world->all_reduce(t, ReduceOp::Sum)->wait();
  EXPECT_EQ(t.to_vector<int64_t>()[4], n);
  world->broadcast(t, n - 1)->wait();
  Tensor out = braid::zeros({n * 5}, DType::Int64);
  world->all_gather(out, t)->wait();
  Tensor rs = braid::zeros({5}, DType::Int64);
  world->reduce_scatter(rs, out)->wait();
  EXPECT_EQ(rs.to_vector<int64_t>()[0], int64_t(n) * n);
  world->barrier()->wait();
}

TEST(SafetyDebug, SendRecvSignatureMismatchNamesBothSides) {
  REQUIRE_DEBUG_AND_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  // Same byte count, different dtype: only the debug check can tell.
  if (r == 0) {
    world->send(braid::ones({4}), 1, 3)->wait();
  } else if (r == 1) {
    Tensor t = braid::zeros({2}, DType::Int64);
    std::string msg = error_of([&] { world->recv(t, 0, 3)->wait(); });
    expect_contains(msg, "recv: ranks disagree");
    expect_contains(msg, "rank 1 passed recv([2] int64, src 0, tag 3)");
    expect_contains(msg, "rank 0 passed send([4] float32, dst 1, tag 3)");
  }
  // A matched pair still works.
  if (r == 0) world->send(braid::full({4}, 2.0), 1, 4)->wait();
  if (r == 1) {
    Tensor t = braid::zeros({4});
    world->recv(t, 0, 4)->wait();
    EXPECT_EQ(t.to_vector<float>()[3], 2.0f);
  }
  expect_group_still_works();
}

TEST(Safety, NewGroupWithDifferentListsThrowsEverywhere) {
  REQUIRE_TWO_RANKS();
  int r = braid::dist::rank();
  std::vector<int> ranks = r == 1 ? std::vector<int>{1, 0} : std::vector<int>{0, 1};
  std::string msg = error_of([&] { braid::dist::new_group(ranks); });
  expect_contains(msg, "new_group: ranks disagree");
  expect_contains(msg, "rank 0 passed new_group([0, 1])");
  expect_contains(msg, "rank 1 passed new_group([1, 0])");
  expect_group_still_works();
}

TEST(Safety, RootedCollectivesCompareRootsAndShapes) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  Tensor t = braid::ones({3});
  std::string msg = error_of([&] { world->reduce(t, r == 0 ? 0 : 1)->wait(); });
  expect_contains(msg, "reduce: ranks disagree");
  expect_contains(msg, "rank 0 passed reduce(sum, [3] float32, dst 0)");
  expect_contains(msg, "rank 1 passed reduce(sum, [3] float32, dst 1)");
  EXPECT_EQ(t.to_vector<float>()[0], 1.0f);
  int64_t chunk = r == 0 ? 1 : 2;
  msg = error_of([&] { world->all_to_all(braid::zeros({n * chunk}), braid::zeros({n * chunk}))->wait(); });
  expect_contains(msg, "all_to_all: ranks disagree");
  expect_contains(msg, "rank 1 passed all_to_all([" + std::to_string(2 * n) + "] float32 -> [" +
                           std::to_string(2 * n) + "] float32)");
  expect_group_still_works();
}

TEST(SafetyDebug, BatchIsendIrecvSignatureMismatchNamesBothSides) {
  REQUIRE_DEBUG_AND_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  using braid::dist::P2POp;
  if (r == 0) {
    world->batch_isend_irecv({P2POp::isend(braid::ones({4}), 1, 6)})->wait();
  } else if (r == 1) {
    Tensor t = braid::zeros({2}, DType::Int64);
    std::string msg = error_of([&] { world->batch_isend_irecv({P2POp::irecv(t, 0, 6)})->wait(); });
    expect_contains(msg, "recv: ranks disagree");
    expect_contains(msg, "rank 1 passed recv([2] int64, src 0, tag 6)");
    expect_contains(msg, "rank 0 passed send([4] float32, dst 1, tag 6)");
  }
  expect_group_still_works();
}

// Ranks that ran different numbers of steps (a smaller data set on one): the first collective where they part is an
// error on every rank naming each rank's call and its number, not a buffer overrun.
TEST(Safety, UnevenStepsStopAtTheFirstDifferentCollective) {
  REQUIRE_TWO_RANKS();
  auto group = braid::dist::new_group({0, 1});
  if (!group->is_member()) return;
  int r = group->rank();
  const int steps = r == 0 ? 5 : 3;
  Tensor grad = braid::ones({1000});
  Tensor accuracy = braid::ones({2}, DType::Float64);
  std::string msg = error_of([&] {
    for (int s = 0; s < steps; ++s) group->all_reduce(grad)->wait();
    group->all_reduce(accuracy)->wait();
  });
  expect_contains(msg, "all_reduce: ranks disagree");
  expect_contains(msg, "rank 0 passed all_reduce(sum, [1000] float32) as operation #4");
  expect_contains(msg, "rank 1 passed all_reduce(sum, [2] float64) as operation #4");
  EXPECT_EQ(accuracy.to_vector<double>()[0], 1.0);
}

// One rank creating a group while the other enters a collective: an error on both, and the world stays in step.
TEST(Safety, NewGroupAgainstACollectiveThrowsEverywhere) {
  REQUIRE_TWO_RANKS();
  auto world = braid::dist::world();
  int r = world->rank();
  Tensor t = braid::ones({4});
  std::string msg = error_of([&] {
    if (r == 0)
      braid::dist::new_group({0, 1});
    else
      world->all_reduce(t)->wait();
  });
  expect_contains(msg, "ranks disagree");
  expect_contains(msg, "rank 0 passed new_group([0, 1])");
  expect_contains(msg, "all_reduce(sum, [4] float32)");
  EXPECT_EQ(t.to_vector<float>()[0], 1.0f);
  expect_group_still_works();
}

// Two threads issuing on one group would pair different calls across ranks; the second thread is refused, and a
// group of its own works from it.
TEST(Safety, SecondThreadOnAGroupIsRefused) {
  auto world = braid::dist::world();
  world->barrier()->wait();  // this thread uses the world
  auto own = braid::dist::new_group(world->ranks());
  std::string refused;
  float sum = 0;
  std::thread other([&] {
    refused = error_of([&] { world->all_reduce(braid::ones({2}))->wait(); });
    Tensor t = braid::ones({2});
    own->all_reduce(t)->wait();
    sum = t.to_vector<float>()[0];
  });
  other.join();
  expect_contains(refused, "all_reduce: group [");
  expect_contains(refused, "is already used by another thread");
  EXPECT_EQ(sum, float(world->size()));
  std::string back = error_of([&] { own->barrier()->wait(); });
  expect_contains(back, "barrier: group [");
}
