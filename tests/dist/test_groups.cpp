// Several process groups on one rank: a rank outside a group gets a non-member group on which every call throws
// (never the world); the groups share one communication thread, which keeps each group's order, lets
// point-to-point of one group progress between another's collectives, and does not grow with the number of
// groups; Work::wait(timeout) and Work::exception(); the version counter of the tensors an operation writes.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <numeric>
#include <string>
#include <thread>

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"
#include "dist_test_util.h"

namespace {

using braid::Tensor;
using braid::dist::P2POp;
using braid::dist::ProcessGroup;
using braid::dist::ReduceOp;
using braid::dist::WorkHandle;

using braid::dist_test::error_of;
using braid::dist_test::expect_contains;

int threads_of_this_process() {
  int n = 0;
  for ([[maybe_unused]] const auto& entry : std::filesystem::directory_iterator("/proc/self/task")) ++n;
  return n;
}

std::string list_str(const std::vector<int>& ranks) {
  std::string out = "[";
  for (size_t i = 0; i < ranks.size(); ++i) out += (i ? ", " : "") + std::to_string(ranks[i]);
  return out + "]";
}

}  // namespace

// Every rank but the last forms a group; the last rank gets the non-member value, and each call on it throws
// (the old null group made the blocking form run a world all_reduce that the members never joined).
TEST(ProcessGroupMembership, NonMemberCallsThrowWhileMembersCommunicate) {
  REQUIRE_RANKS(2);
  const int n = braid::dist::world_size(), r = braid::dist::rank();
  std::vector<int> members(size_t(n - 1));
  std::iota(members.begin(), members.end(), 0);
  auto group = braid::dist::new_group(members);
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->ranks(), members);
  EXPECT_EQ(group->size(), n - 1);
  Tensor t = braid::full({3}, double(r + 1));
  if (r == n - 1) {
    EXPECT_FALSE(group->is_member());
    EXPECT_EQ(group->rank(), -1);
    const std::string who = "this rank (global " + std::to_string(r) + ") is not a member of group " + list_str(members);
    expect_contains(error_of([&] { braid::dist::all_reduce(t, ReduceOp::Sum, group); }), "all_reduce: " + who);
    expect_contains(error_of([&] { group->all_reduce(t); }), "all_reduce: " + who);
    expect_contains(error_of([&] { group->broadcast(t, 0); }), "broadcast: " + who);
    expect_contains(error_of([&] { braid::dist::barrier(group); }), "barrier: " + who);
    expect_contains(error_of([&] { group->send(t, 0); }), "send: " + who);
    expect_contains(error_of([&] { group->recv(t, 0); }), "recv: " + who);
    expect_contains(error_of([&] { group->reduce(t, 0); }), "reduce: " + who);
    expect_contains(error_of([&] { braid::dist::gather(t, t, 0, group); }), "gather: " + who);
    expect_contains(error_of([&] { group->batch_isend_irecv({P2POp::isend(t, 0)}); }), "batch_isend_irecv: " + who);
    EXPECT_EQ(t.to_vector<float>()[0], float(r + 1));  // untouched
  } else {
    EXPECT_TRUE(group->is_member());
    EXPECT_EQ(group->rank(), r);
    braid::dist::all_reduce(t, ReduceOp::Sum, group);
    EXPECT_EQ(t.to_vector<float>()[2], float((n - 1) * n / 2));
  }
  // Everybody is still in step on the world.
  Tensor one = braid::ones({1});
  braid::dist::all_reduce(one);
  EXPECT_EQ(one.item<float>(), float(n));
}

TEST(ProcessGroupMembership, NullGroupIsNeverTheWorld) {
  Tensor t = braid::ones({2});
  expect_contains(error_of([&] { braid::dist::all_reduce(t, ReduceOp::Sum, nullptr); }), "the group is null");
  expect_contains(error_of([&] { braid::dist::barrier(nullptr); }), "the group is null");
  expect_contains(error_of([&] { braid::dist::broadcast(t, 0, nullptr); }), "the group is null");
  EXPECT_EQ(t.to_vector<float>()[0], 1.0f);
}

// world, pairs {0,1},{2,3},... and evens/odds on every rank, with asynchronous collectives and send/recv of all three
// interleaved and waited for only at the end.
TEST(SharedCommunicationThread, InterleavedGroupsKeepTheirOrderAndValues) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  std::vector<std::vector<int>> pairs, parities(2);
  for (int k = 0; k < n; k += 2) pairs.push_back(k + 1 < n ? std::vector<int>{k, k + 1} : std::vector<int>{k});
  for (int k = 0; k < n; ++k) parities[size_t(k % 2)].push_back(k);
  std::shared_ptr<ProcessGroup> pair, parity;
  for (auto& p : pairs) {
    auto g = braid::dist::new_group(p);
    if (g->is_member()) pair = g;
  }
  for (auto& p : parities) {
    auto g = braid::dist::new_group(p);
    if (g->is_member()) parity = g;
  }
  ASSERT_TRUE(pair && parity);
  const std::vector<int>& pair_ranks = pair->ranks();
  const std::vector<int>& parity_ranks = parity->ranks();
  auto sum_of = [](const std::vector<int>& ranks, int k) {
    double s = 0;
    for (int g : ranks) s += g + 10.0 * k;
    return s;
  };

  const int rounds = 12;
  const int64_t big = 1 << 16;  // the rendezvous protocol: a transfer that needs its peer to progress
  std::vector<Tensor> w, p, q, gathered, sent, received;
  std::vector<WorkHandle> works;
  for (int k = 0; k < rounds; ++k) {
    w.push_back(braid::full({64}, r + 10.0 * k));
    works.push_back(world->all_reduce(w.back()));
    if (pair->size() == 2) {
      int peer = 1 - pair->rank();
      sent.push_back(braid::full({big}, r * 100.0 + k));
      received.push_back(braid::zeros({big}));
      works.push_back(pair->send(sent.back(), peer, k));
      works.push_back(pair->recv(received.back(), peer, k));
    }
    p.push_back(braid::full({32}, r + 10.0 * k));
    works.push_back(pair->all_reduce(p.back()));
    q.push_back(braid::full({16}, r + 10.0 * k));
    works.push_back(parity->all_reduce(q.back(), k % 2 ? ReduceOp::Max : ReduceOp::Sum));
    gathered.push_back(braid::zeros({parity->size(), 2}));
    works.push_back(parity->all_gather(gathered.back(), braid::full({2}, double(r * 1000 + k))));
  }
  for (auto it = works.rbegin(); it != works.rend(); ++it) (*it)->wait();

  for (int k = 0; k < rounds; ++k) {
    SCOPED_TRACE("round " + std::to_string(k));
    EXPECT_EQ(w[size_t(k)].to_vector<float>()[63], float(sum_of(world->ranks(), k)));
    EXPECT_EQ(p[size_t(k)].to_vector<float>()[0], float(sum_of(pair_ranks, k)));
    float parity_want = k % 2 ? float(parity_ranks.back() + 10.0 * k) : float(sum_of(parity_ranks, k));
    EXPECT_EQ(q[size_t(k)].to_vector<float>()[15], parity_want);
    auto g = gathered[size_t(k)].to_vector<float>();
    for (size_t j = 0; j < parity_ranks.size(); ++j) EXPECT_EQ(g[2 * j + 1], float(parity_ranks[j] * 1000 + k));
    if (pair->size() == 2) {
      int peer_global = pair_ranks[size_t(1 - pair->rank())];
      EXPECT_EQ(received[size_t(k)].to_vector<float>()[big - 1], float(peer_global * 100.0 + k));
    }
  }
}

// A receive of one group that waits for its sender must not hold back another group's collectives on the shared
// thread: rank 1 sends only after a world all_reduce that rank 0 issues after the receive.
TEST(SharedCommunicationThread, PendingRecvOfOneGroupDoesNotBlockAnothersCollectives) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  auto pair = braid::dist::new_group({0, 1});
  Tensor sum = braid::ones({4});
  if (r == 0) {
    Tensor got = braid::zeros({1 << 16});
    WorkHandle recv = pair->recv(got, 1, 9);
    world->all_reduce(sum)->wait();
    recv->wait();
    EXPECT_EQ(got.to_vector<float>()[100], 42.0f);
  } else {
    world->all_reduce(sum)->wait();
    if (r == 1) pair->send(braid::full({1 << 16}, 42.0), 0, 9)->wait();
  }
  EXPECT_EQ(sum.to_vector<float>()[0], float(n));
}

// A send issued after another group's collective does not wait behind it on the shared thread: rank 1 needs the
// message before it joins the collective that rank 0's thread is blocked in.
TEST(SharedCommunicationThread, SendIssuedAfterAnotherGroupsCollectiveDoesNotWaitForIt) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  auto pair = braid::dist::new_group({0, 1});
  Tensor sum = braid::full({8}, double(r));
  Tensor msg = braid::full({1 << 16}, r == 0 ? 5.0 : 0.0);
  if (r == 0) {
    WorkHandle collective = world->all_reduce(sum);
    WorkHandle sent = pair->send(msg, 1, 3);
    sent->wait();
    collective->wait();
  } else if (r == 1) {
    pair->recv(msg, 0, 3)->wait();
    EXPECT_EQ(msg.to_vector<float>()[7], 5.0f);
    world->all_reduce(sum)->wait();
  } else {
    world->all_reduce(sum)->wait();
  }
  EXPECT_EQ(sum.to_vector<float>()[0], float(n * (n - 1) / 2));
}

TEST(SharedCommunicationThread, GroupsAddNoThreads) {
  auto world = braid::dist::world();
  const int n = world->size();
  Tensor t = braid::ones({8});
  world->all_reduce(t)->wait();  // the communication thread exists from here on
  const int before = threads_of_this_process();
  std::vector<std::shared_ptr<ProcessGroup>> groups;
  for (int k = 0; k < 8; ++k) {
    std::vector<int> ranks(static_cast<size_t>(n));
    std::iota(ranks.begin(), ranks.end(), 0);
    std::rotate(ranks.begin(), ranks.begin() + k % n, ranks.end());
    groups.push_back(braid::dist::new_group(ranks));
    Tensor u = braid::ones({8});
    groups.back()->all_reduce(u)->wait();
    EXPECT_EQ(u.to_vector<float>()[7], float(n));
  }
  EXPECT_EQ(threads_of_this_process(), before) << "8 groups added threads";
}

// ---- Work ----

TEST(WorkWaitWithTimeout, ReturnsFalseWhileThePeersAreLateThenTrue) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  Tensor t = braid::full({16}, double(r));
  world->barrier()->wait();
  if (r != 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    world->all_reduce(t)->wait();
  } else {
    WorkHandle work = world->all_reduce(t);
    auto start = std::chrono::steady_clock::now();
    EXPECT_FALSE(work->wait(std::chrono::milliseconds(50)));
    EXPECT_GE(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(50));
    EXPECT_FALSE(work->is_completed());
    EXPECT_EQ(work->exception(), nullptr);
    EXPECT_TRUE(work->wait(std::chrono::seconds(30)));
    EXPECT_TRUE(work->is_completed());
    EXPECT_EQ(work->exception(), nullptr);
    work->wait();  // still fine afterwards
  }
  EXPECT_EQ(t.to_vector<float>()[0], float(n * (n - 1) / 2));
}

TEST(WorkWaitWithTimeout, FailedOperationReportsItsException) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int r = world->rank();
  if (r == 0) world->send(braid::ones({3}), 1, 11)->wait();
  if (r == 1) {
    Tensor bigger = braid::zeros({5});
    WorkHandle work = world->recv(bigger, 0, 11);
    EXPECT_THROW(work->wait(std::chrono::seconds(30)), braid::Error);
    ASSERT_TRUE(work->is_completed());
    std::exception_ptr error = work->exception();
    ASSERT_NE(error, nullptr);
    try {
      std::rethrow_exception(error);
    } catch (const braid::Error& e) {
      expect_contains(e.what(), "sent 3 elements, the tensor holds 5");
    }
    EXPECT_THROW(work->wait(), braid::Error);
  }
  WorkHandle ok = world->barrier();
  EXPECT_TRUE(ok->wait(std::chrono::seconds(30)));
  EXPECT_EQ(ok->exception(), nullptr);
}

// ---- version counters ----

TEST(ProcessGroupVersions, OperationsBumpTheTensorsTheyWrite) {
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  Tensor t = braid::ones({4});
  uint64_t v = t.version();
  world->all_reduce(t)->wait();
  EXPECT_EQ(t.version(), v + 1);
  Tensor view = braid::ops::narrow(t, 0, 0, 2);  // views share the counter
  world->broadcast(view, 0)->wait();
  EXPECT_EQ(t.version(), r == 0 ? v + 1 : v + 2);  // the root's tensor is only read
  Tensor out = braid::zeros({n * 4});
  uint64_t vo = out.version(), vt = t.version();
  world->all_gather(out, t)->wait();
  EXPECT_EQ(out.version(), vo + 1);
  EXPECT_EQ(t.version(), vt);
  Tensor red = braid::ones({2});
  uint64_t vr = red.version();
  world->reduce(red, n - 1)->wait();
  EXPECT_EQ(red.version(), r == n - 1 ? vr + 1 : vr);  // only dst's tensor receives
  if (n >= 2 && r < 2) {
    Tensor msg = braid::ones({2});
    uint64_t vm = msg.version();
    if (r == 0) {
      world->send(msg, 1)->wait();
      EXPECT_EQ(msg.version(), vm);
    } else {
      world->recv(msg, 0)->wait();
      EXPECT_EQ(msg.version(), vm + 1);
    }
  }
}
