// Debug mode (BRAID_DIST_DEBUG=1, set by the CTest entry that runs --gtest_filter=Safety*): ranks that call a
// collective with different arguments get a braid::Error on every rank naming each rank and what it passed, the
// mismatched collective does not run, and the group stays usable. Without debug mode these tests skip.
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

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

TEST(SafetyDebug, ShapeMismatchThrowsOnEveryRankNamingEachRank) {
  REQUIRE_DEBUG_AND_RANKS();
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
TEST(SafetyDebug, BlockingCallMismatchThrowsTheSameWay) {
  REQUIRE_DEBUG_AND_RANKS();
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

TEST(SafetyDebug, DtypeAndReduceOpMismatches) {
  REQUIRE_DEBUG_AND_RANKS();
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

TEST(SafetyDebug, DifferentOperationsAndRoots) {
  REQUIRE_DEBUG_AND_RANKS();
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

TEST(SafetyDebug, AllGatherAndReduceScatterShapes) {
  REQUIRE_DEBUG_AND_RANKS();
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

TEST(SafetyDebug, MatchingCallsPass) {
  REQUIRE_DEBUG_AND_RANKS();
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

TEST(SafetyDebug, NewGroupWithDifferentListsThrowsEverywhere) {
  REQUIRE_DEBUG_AND_RANKS();
  int r = braid::dist::rank();
  std::vector<int> ranks = r == 1 ? std::vector<int>{1, 0} : std::vector<int>{0, 1};
  std::string msg = error_of([&] { braid::dist::new_group(ranks); });
  expect_contains(msg, "new_group: ranks disagree");
  expect_contains(msg, "rank 0 passed [0, 1]");
  expect_contains(msg, "rank 1 passed [1, 0]");
  expect_group_still_works();
}

TEST(SafetyDebug, RootedCollectivesCompareRootsAndShapes) {
  REQUIRE_DEBUG_AND_RANKS();
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
