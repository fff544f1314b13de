// ProcessGroup over MPI (and as a single process): every collective against values worked out by hand, each rank
// contributing values that depend on its rank; send/recv in both directions around a ring; sub-groups; overlap of
// an outstanding all_reduce with computation on the caller's thread; the blocking forms; argument errors.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <thread>

#include "braid/core/creation.h"
#include "braid/core/cuda.h"
#include "braid/core/ops.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"
#include "dist_test_util.h"
#include "hand_values.h"

namespace {

using braid::DType;
using braid::Tensor;
using braid::dist::ProcessGroup;
using braid::dist::ReduceOp;
using braid::dist::WorkHandle;

using braid::dist_test::all_ranks;
using braid::dist_test::expected;
using braid::dist_test::rank_tensor;
using braid::dist_test::value;

template <class T>
class ProcessGroupTyped : public ::testing::Test {};
using Types = ::testing::Types<float, double, int64_t>;
TYPED_TEST_SUITE(ProcessGroupTyped, Types);

}  // namespace

TEST(ProcessGroup, WorldMatchesInit) {
  auto world = braid::dist::world();
  ASSERT_TRUE(world);
  EXPECT_TRUE(braid::dist::is_initialized());
  EXPECT_EQ(world->rank(), braid::dist::rank());
  EXPECT_EQ(world->size(), braid::dist::world_size());
  EXPECT_EQ(world->ranks(), all_ranks(braid::dist::world_size()));
  EXPECT_GE(braid::dist::local_rank(), 0);
  EXPECT_LT(braid::dist::local_rank(), braid::dist::local_world_size());
  // The tests run on one machine: every rank is local.
  EXPECT_EQ(braid::dist::local_world_size(), braid::dist::world_size());
  EXPECT_EQ(braid::dist::local_rank(), braid::dist::rank());
  EXPECT_EQ(braid::dist::world(), world);  // one world group
  // One GPU per rank of the host when there are GPUs, else the CPU.
  braid::Device device = braid::dist::local_device();
  if (braid::cuda::is_available())
    EXPECT_EQ(device, braid::Device::cuda(braid::dist::local_rank() % braid::cuda::device_count()));
  else
    EXPECT_EQ(device, braid::Device::cpu());
}

TYPED_TEST(ProcessGroupTyped, AllReduceEveryOp) {
  using T = TypeParam;
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
    for (braid::Shape shape : {braid::Shape{2, 3}, braid::Shape{1000}}) {
      Tensor t = rank_tensor<T>(r, shape);
      WorkHandle work = world->all_reduce(t, op);
      work->wait();
      EXPECT_TRUE(work->is_completed());
      auto got = t.to_vector<T>();
      for (int64_t i = 0; i < t.numel(); ++i)
        ASSERT_EQ(got[size_t(i)], expected<T>(op, all_ranks(n), i)) << reduce_op_name(op) << " element " << i;
    }
  }
}

TYPED_TEST(ProcessGroupTyped, BroadcastFromEveryRoot) {
  using T = TypeParam;
  auto world = braid::dist::world();
  for (int root = 0; root < world->size(); ++root) {
    Tensor t = rank_tensor<T>(world->rank(), {3, 4});
    world->broadcast(t, root)->wait();
    auto got = t.to_vector<T>();
    for (int64_t i = 0; i < 12; ++i) ASSERT_EQ(got[size_t(i)], T(value(root, i))) << "root " << root;
  }
}

TYPED_TEST(ProcessGroupTyped, AllGatherInRankOrder) {
  using T = TypeParam;
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  Tensor input = rank_tensor<T>(r, {5});
  Tensor output = braid::zeros({n, 5}, braid::dtype_of<T>::value);
  world->all_gather(output, input)->wait();
  auto got = output.to_vector<T>();
  for (int k = 0; k < n; ++k)
    for (int64_t i = 0; i < 5; ++i) ASSERT_EQ(got[size_t(k * 5 + i)], T(value(k, i))) << "chunk " << k;

  // In place: the input is this rank's own chunk of the output.
  Tensor out2 = braid::zeros({n, 5}, braid::dtype_of<T>::value);
  Tensor mine = braid::ops::select(out2, 0, r);
  braid::ops::copy_(mine, input);
  world->all_gather(out2, mine)->wait();
  EXPECT_EQ(out2.to_vector<T>(), got);
}

TYPED_TEST(ProcessGroupTyped, ReduceScatterChunks) {
  using T = TypeParam;
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  const int64_t chunk = 4;
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
    Tensor input = rank_tensor<T>(r, {n * chunk});
    Tensor output = braid::zeros({chunk}, braid::dtype_of<T>::value);
    world->reduce_scatter(output, input, op)->wait();
    auto got = output.to_vector<T>();
    for (int64_t i = 0; i < chunk; ++i)
      ASSERT_EQ(got[size_t(i)], expected<T>(op, all_ranks(n), r * chunk + i)) << reduce_op_name(op) << " element " << i;
  }
}

TEST(ProcessGroup, AvgOfIntegersTruncates) {
  auto world = braid::dist::world();
  int n = world->size();
  Tensor t = braid::from_vector(std::vector<int64_t>{1, -1, 7});
  world->all_reduce(t, ReduceOp::Avg)->wait();
  EXPECT_EQ(t.to_vector<int64_t>(), (std::vector<int64_t>{n / n, -n / n, 7 * n / n}));
  Tensor odd = braid::from_vector(std::vector<int64_t>{world->rank() == 0 ? 1 : 0});
  world->all_reduce(odd, ReduceOp::Avg)->wait();
  EXPECT_EQ(odd.item<int64_t>(), n == 1 ? 1 : 0);
}

TEST(ProcessGroup, EmptyTensorsAndBarrier) {
  auto world = braid::dist::world();
  Tensor empty = braid::zeros({0});
  world->all_reduce(empty)->wait();
  world->broadcast(empty, 0)->wait();
  world->barrier()->wait();
  EXPECT_EQ(world->barrier()->description(), "barrier()");
}

TEST(ProcessGroup, DescriptionNamesTheOperation) {
  auto world = braid::dist::world();
  Tensor t = braid::zeros({1024});
  WorkHandle w = world->all_reduce(t);
  EXPECT_EQ(w->description(), "all_reduce(sum, [1024] float32)");
  w->wait();
  Tensor u = braid::zeros({2, 3}, DType::Int64);
  WorkHandle b = world->broadcast(u, 0);
  EXPECT_EQ(b->description(), "broadcast([2, 3] int64, root 0)");
  b->wait();
}

TEST(ProcessGroup, ManyOutstandingOperationsCompleteInOrder) {
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  std::vector<Tensor> tensors;
  std::vector<WorkHandle> works;
  for (int k = 0; k < 32; ++k) {
    tensors.push_back(braid::full({257}, double(r + k)));
    works.push_back(k % 2 ? world->all_reduce(tensors.back(), ReduceOp::Max) : world->all_reduce(tensors.back()));
  }
  // Waiting in reverse order is fine: the operations ran in issue order anyway.
  for (int k = 31; k >= 0; --k) works[size_t(k)]->wait();
  for (int k = 0; k < 32; ++k) {
    float want = k % 2 ? float(n - 1 + k) : float(n * k + n * (n - 1) / 2);
    ASSERT_EQ(tensors[size_t(k)].to_vector<float>()[256], want) << k;
    EXPECT_TRUE(works[size_t(k)]->is_completed());
  }
}

TEST(ProcessGroup, SendRecvAroundTheRingBothWays) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  int next = (r + 1) % n, prev = (r + n - 1) % n;
  // Large enough for the rendezvous protocol: a blocking MPI_Send from every rank at once would deadlock.
  const int64_t count = 1 << 20;
  Tensor to_next = braid::full({count}, double(r));
  Tensor to_prev = braid::full({count}, double(100 + r));
  Tensor from_prev = braid::zeros({count});
  Tensor from_next = braid::zeros({count});
  // Every rank sends first and receives afterwards, in both directions at once.
  WorkHandle s1 = world->send(to_next, next, /*tag=*/1);
  WorkHandle s2 = world->send(to_prev, prev, /*tag=*/2);
  WorkHandle r1 = world->recv(from_prev, prev, /*tag=*/1);
  WorkHandle r2 = world->recv(from_next, next, /*tag=*/2);
  r2->wait();
  r1->wait();
  s1->wait();
  s2->wait();
  EXPECT_EQ(from_prev.to_vector<float>()[count - 1], float(prev));
  EXPECT_EQ(from_prev.to_vector<float>()[0], float(prev));
  EXPECT_EQ(from_next.to_vector<float>()[count / 2], float(100 + next));
  EXPECT_EQ(s1->description(), "send([1048576] float32, dst " + std::to_string(next) + ", tag 1)");
}

TEST(ProcessGroup, OutstandingSendDoesNotBlockLaterCollectives) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  int r = world->rank();
  Tensor big = braid::full({1 << 20}, 7.0, DType::Float64);
  Tensor sum = braid::ones({3});
  if (r == 0) {
    // Rank 1 receives only after the all_reduce: the send must stay outstanding while the all_reduce runs.
    WorkHandle s = world->send(big, 1, 5);
    world->all_reduce(sum)->wait();
    s->wait();
  } else {
    world->all_reduce(sum)->wait();
    if (r == 1) {
      Tensor got = braid::zeros({1 << 20}, DType::Float64);
      world->recv(got, 0, 5)->wait();
      EXPECT_EQ(got.to_vector<double>()[12345], 7.0);
    }
  }
  EXPECT_EQ(sum.to_vector<float>()[0], float(world->size()));
}

TEST(ProcessGroup, RecvOfTheWrongSizeThrows) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  int r = world->rank();
  if (r == 0) {
    world->send(braid::ones({3}), 1, 7)->wait();
    world->send(braid::ones({5}), 1, 8)->wait();
  } else if (r == 1) {
    Tensor bigger = braid::zeros({5});
    EXPECT_THROW(world->recv(bigger, 0, 7)->wait(), braid::Error);  // 3 elements arrive
    Tensor smaller = braid::zeros({3});
    EXPECT_THROW(world->recv(smaller, 0, 8)->wait(), braid::Error);  // 5 elements do not fit
  }
  world->barrier()->wait();
}

TEST(ProcessGroup, SubGroupOfEvenRanks) {
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  std::vector<int> evens;
  for (int k = 0; k < n; k += 2) evens.push_back(k);
  auto group = braid::dist::new_group(evens);
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->ranks(), evens);
  if (r % 2) {
    EXPECT_FALSE(group->is_member());
    EXPECT_EQ(group->rank(), -1);
  } else {
    EXPECT_TRUE(group->is_member());
    EXPECT_EQ(group->rank(), r / 2);
    EXPECT_EQ(group->size(), int(evens.size()));
    EXPECT_EQ(group->ranks(), evens);
    Tensor t = rank_tensor<double>(r, {6});
    group->all_reduce(t)->wait();
    auto got = t.to_vector<double>();
    for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(got[size_t(i)], expected<double>(ReduceOp::Sum, evens, i));
    Tensor g = braid::zeros({group->size(), 2}, DType::Int64);
    group->all_gather(g, braid::full({2}, double(r), DType::Int64))->wait();
    for (int k = 0; k < group->size(); ++k) EXPECT_EQ(g.to_vector<int64_t>()[size_t(2 * k)], evens[size_t(k)]);
  }
  // The world still works, and in order with the sub-group's operations.
  Tensor one = braid::ones({1});
  world->all_reduce(one)->wait();
  EXPECT_EQ(one.item<float>(), float(n));
}

TEST(ProcessGroup, SubGroupRanksFollowTheListOrder) {
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  std::vector<int> reversed = all_ranks(n);
  std::reverse(reversed.begin(), reversed.end());
  auto group = braid::dist::new_group(reversed);
  ASSERT_NE(group, nullptr);
  EXPECT_EQ(group->rank(), n - 1 - r);
  Tensor t = braid::full({4}, double(r));
  group->broadcast(t, 0)->wait();  // group rank 0 is world rank n-1
  EXPECT_EQ(t.to_vector<float>()[3], float(n - 1));
  if (n >= 2) {  // point-to-point uses group ranks too
    int peer = group->rank() == 0 ? 1 : 0;
    if (group->rank() <= 1) {
      Tensor msg = braid::full({2}, double(r));
      if (group->rank() == 0) {
        group->send(msg, peer)->wait();
      } else {
        group->recv(msg, peer)->wait();
        EXPECT_EQ(msg.to_vector<float>()[0], float(n - 1));
      }
    }
  }
}

TEST(ProcessGroup, NewGroupRejectsBadRankLists) {
  int n = braid::dist::world_size();
  EXPECT_THROW(braid::dist::new_group({}), braid::Error);
  EXPECT_THROW(braid::dist::new_group({0, 0}), braid::Error);
  EXPECT_THROW(braid::dist::new_group({n}), braid::Error);
  EXPECT_THROW(braid::dist::new_group({-1}), braid::Error);
}

TEST(ProcessGroup, AllReduceOverlapsTheCallersComputation) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  using clock = std::chrono::steady_clock;
  const int64_t count = 1 << 22;  // 16 MiB
  Tensor t = braid::full({count}, double(r + 1));
  world->barrier()->wait();  // the ranks start together, so the delay below is measured from a common start
  if (r != 0) {
    // The others join late, so rank 0's all_reduce cannot finish before they do: rank 0 must get control back at
    // once and compute meanwhile.
    std::this_thread::sleep_for(std::chrono::milliseconds(400));
    world->all_reduce(t)->wait();
  } else {
    auto issued = clock::now();
    WorkHandle work = world->all_reduce(t);
    auto returned = clock::now();
    EXPECT_LT(returned - issued, std::chrono::milliseconds(100)) << "all_reduce blocked the caller";
    EXPECT_FALSE(work->is_completed());
    // Computation on the caller's thread while the all_reduce is outstanding.
    auto compute_start = clock::now();
    Tensor a = braid::full({256, 256}, 0.5), b = braid::full({256, 256}, 2.0);
    Tensor c = braid::ops::matmul(a, b);
    auto compute_end = clock::now();
    EXPECT_EQ(c.to_vector<float>()[0], 256.0f);
    bool done_after_compute = work->is_completed();
    work->wait();
    auto finished = clock::now();
    EXPECT_TRUE(work->is_completed());
    if (compute_end - issued < std::chrono::milliseconds(300)) {
      EXPECT_FALSE(done_after_compute) << "the all_reduce completed before the other ranks joined it";
    }
    // The computation started (and ended) before the all_reduce finished: they overlapped.
    EXPECT_LT(compute_start, finished);
    EXPECT_GE(finished - issued, std::chrono::milliseconds(300));
  }
  float want = float(n * (n + 1) / 2);
  auto got = t.to_vector<float>();
  EXPECT_EQ(got[0], want);
  EXPECT_EQ(got[size_t(count - 1)], want);
}

// The blocking free functions (the caller's thread runs the collective) give what the asynchronous forms give.
TEST(ProcessGroup, BlockingFormsMatchTheHandValues) {
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
    Tensor t = rank_tensor<double>(r, {1000});
    braid::dist::all_reduce(t, op);  // the world by default
    auto got = t.to_vector<double>();
    for (int64_t i = 0; i < t.numel(); ++i)
      ASSERT_EQ(got[size_t(i)], expected<double>(op, all_ranks(n), i)) << reduce_op_name(op) << " element " << i;
  }
  Tensor b = rank_tensor<int64_t>(r, {7});
  braid::dist::broadcast(b, n - 1, world);
  for (int64_t i = 0; i < 7; ++i) ASSERT_EQ(b.to_vector<int64_t>()[size_t(i)], int64_t(value(n - 1, i)));
  Tensor gathered = braid::zeros({n, 3});
  braid::dist::all_gather(gathered, rank_tensor<float>(r, {3}));
  for (int k = 0; k < n; ++k)
    for (int64_t i = 0; i < 3; ++i) ASSERT_EQ(gathered.to_vector<float>()[size_t(k * 3 + i)], float(value(k, i)));
  Tensor part = braid::zeros({2});
  braid::dist::reduce_scatter(part, rank_tensor<float>(r, {2 * n}), ReduceOp::Max, world);
  for (int64_t i = 0; i < 2; ++i)
    ASSERT_EQ(part.to_vector<float>()[size_t(i)], expected<float>(ReduceOp::Max, all_ranks(n), r * 2 + i));
  braid::dist::barrier();
}

// A blocking call issued behind outstanding asynchronous ones waits its turn: everything completes, in order.
TEST(ProcessGroup, BlockingCallAfterOutstandingOperationsRunsInOrder) {
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  std::vector<Tensor> early;
  std::vector<WorkHandle> works;
  for (int k = 0; k < 8; ++k) {
    early.push_back(braid::full({1 << 14}, double(r + k)));
    works.push_back(world->all_reduce(early.back()));
  }
  Tensor last = braid::full({5}, double(r));
  braid::dist::all_reduce(last, ReduceOp::Max);
  EXPECT_EQ(last.to_vector<float>()[4], float(n - 1));
  for (int k = 0; k < 8; ++k) {
    EXPECT_TRUE(works[size_t(k)]->is_completed()) << "operation " << k << " issued earlier is still running";
    EXPECT_EQ(early[size_t(k)].to_vector<float>()[100], float(n * k + n * (n - 1) / 2));
  }
}

// An asynchronous operation progresses on its own: it completes while the caller never waits.
TEST(ProcessGroup, AsynchronousOperationCompletesWithoutAWait) {
  auto world = braid::dist::world();
  int n = world->size();
  Tensor t = braid::full({4096}, 1.0);
  WorkHandle work = world->all_reduce(t);
  auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  while (!work->is_completed() && std::chrono::steady_clock::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  ASSERT_TRUE(work->is_completed()) << "the all_reduce made no progress without a wait()";
  EXPECT_EQ(t.to_vector<float>()[4095], float(n));
  work->wait();
}

TEST(ProcessGroup, ArgumentErrorsThrowOnTheCallersThread) {
  auto world = braid::dist::world();
  int n = world->size();
  Tensor m = braid::zeros({4, 6});
  Tensor transposed = braid::ops::transpose(m, 0, 1);
  ASSERT_FALSE(transposed.is_contiguous());
  EXPECT_THROW(world->all_reduce(transposed), braid::Error);
  EXPECT_THROW(world->broadcast(transposed, 0), braid::Error);
  EXPECT_THROW(world->all_reduce(Tensor()), braid::Error);
  EXPECT_THROW(world->broadcast(m, n), braid::Error);
  EXPECT_THROW(world->broadcast(m, -1), braid::Error);
  // all_gather/reduce_scatter: sizes, dtypes.
  EXPECT_THROW(world->all_gather(braid::zeros({n * 4 + 1}), braid::zeros({4})), braid::Error);
  EXPECT_THROW(world->all_gather(braid::zeros({n * 4}, DType::Float64), braid::zeros({4})), braid::Error);
  EXPECT_THROW(world->reduce_scatter(braid::zeros({4}), braid::zeros({n * 4 + 2})), braid::Error);
  Tensor shared = braid::zeros({n * 4});
  if (n > 1) {
    EXPECT_THROW(world->reduce_scatter(braid::ops::narrow(shared, 0, 0, 4), shared), braid::Error);
  }
  // Point-to-point: to itself, outside the group, negative tag.
  EXPECT_THROW(world->send(m, world->rank()), braid::Error);
  EXPECT_THROW(world->recv(m, world->rank()), braid::Error);
  EXPECT_THROW(world->send(m, n), braid::Error);
  EXPECT_THROW(world->recv(m, -1), braid::Error);
  if (n > 1) {
    EXPECT_THROW(world->send(m, (world->rank() + 1) % n, -3), braid::Error);
  }
  try {
    world->all_reduce(transposed);
    FAIL() << "no error";
  } catch (const braid::Error& e) {
    EXPECT_NE(std::string(e.what()).find("contiguous"), std::string::npos) << e.what();
  }
  // Nothing was queued by the failed calls: the group still works.
  Tensor one = braid::ones({1});
  world->all_reduce(one)->wait();
  EXPECT_EQ(one.item<float>(), float(n));
}

TEST(ProcessGroup, CudaTensorWithoutAUsableDeviceThrows) {
  if (braid::cuda::is_available()) GTEST_SKIP() << "a GPU is visible; the NCCL tests cover CUDA tensors";
  // Only the storage's device matters to the process group, which must refuse before touching the memory.
  auto buffer = std::make_shared<std::vector<float>>(8);
  braid::Storage storage{std::shared_ptr<void>(buffer, buffer->data()), 8 * sizeof(float), braid::Device::cuda(0)};
  Tensor fake = braid::make_tensor(storage, {8}, {1}, 0, DType::Float32);
  auto world = braid::dist::world();
  if (world->size() == 1) GTEST_SKIP() << "a single process copies locally";
  EXPECT_THROW(world->all_reduce(fake), braid::Error);
  EXPECT_THROW(world->broadcast(fake, 0), braid::Error);
}

TEST(ProcessGroup, SingleProcessCollectivesAreLocal) {
  auto world = braid::dist::world();
  if (world->size() != 1) GTEST_SKIP() << "only for a world of one rank";
  Tensor t = braid::from_vector(std::vector<float>{1, 2, 3});
  world->all_reduce(t, ReduceOp::Avg)->wait();
  EXPECT_EQ(t.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  Tensor out = braid::zeros({3});
  WorkHandle w = world->all_gather(out, t);
  EXPECT_TRUE(w->is_completed());
  EXPECT_EQ(out.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  Tensor rs = braid::zeros({3});
  world->reduce_scatter(rs, t)->wait();
  EXPECT_EQ(rs.to_vector<float>(), (std::vector<float>{1, 2, 3}));
  EXPECT_THROW(world->send(t, 0), braid::Error);
  EXPECT_THROW(world->recv(t, 0), braid::Error);
  auto self = braid::dist::new_group({0});
  ASSERT_NE(self, nullptr);
  self->broadcast(t, 0)->wait();
}

// ---- NCCL (CUDA tensors); these need a GPU per rank and skip without one ----

TEST(ProcessGroupNccl, CollectivesOnCudaTensors) {
  if (!braid::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (braid::cuda::device_count() < braid::dist::local_world_size()) GTEST_SKIP() << "fewer GPUs than local ranks";
  auto world = braid::dist::world();
  int n = world->size(), r = world->rank();
  braid::Device device = braid::Device::cuda(braid::dist::local_rank());
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
    Tensor t = braid::ops::to_device(rank_tensor<float>(r, {1000}), device);
    world->all_reduce(t, op)->wait();
    auto got = braid::ops::to_device(t, braid::Device::cpu()).to_vector<float>();
    for (int64_t i = 0; i < 1000; ++i)
      ASSERT_NEAR(got[size_t(i)], expected<float>(op, all_ranks(n), i), 1e-5) << reduce_op_name(op) << " " << i;
  }
  Tensor b = braid::ops::to_device(rank_tensor<double>(r, {7}), device);
  world->broadcast(b, n - 1)->wait();
  EXPECT_EQ(braid::ops::to_device(b, braid::Device::cpu()).to_vector<double>()[6], value(n - 1, 6));
  Tensor in = braid::ops::to_device(rank_tensor<int64_t>(r, {3}), device);
  Tensor out = braid::zeros({n, 3}, braid::TensorOptions(DType::Int64, device));
  world->all_gather(out, in)->wait();
  auto gathered = braid::ops::to_device(out, braid::Device::cpu()).to_vector<int64_t>();
  for (int k = 0; k < n; ++k) EXPECT_EQ(gathered[size_t(3 * k + 2)], int64_t(value(k, 2)));
  Tensor rs_in = braid::ops::to_device(rank_tensor<float>(r, {n * 2}), device);
  Tensor rs_out = braid::zeros({2}, device);
  world->reduce_scatter(rs_out, rs_in)->wait();
  EXPECT_EQ(braid::ops::to_device(rs_out, braid::Device::cpu()).to_vector<float>()[1],
            expected<float>(ReduceOp::Sum, all_ranks(n), r * 2 + 1));
  if (n >= 2) {
    Tensor msg = braid::ops::to_device(braid::full({16}, double(r)), device);
    Tensor got = braid::zeros({16}, device);
    int next = (r + 1) % n, prev = (r + n - 1) % n;
    // NCCL runs a rank's send and recv in order on one stream, and a send waits for its recv: even ranks send
    // first, odd ranks receive first, or every rank would sit in its send.
    if (r % 2 == 0) {
      world->send(msg, next)->wait();
      world->recv(got, prev)->wait();
    } else {
      world->recv(got, prev)->wait();
      world->send(msg, next)->wait();
    }
    EXPECT_EQ(braid::ops::to_device(got, braid::Device::cpu()).to_vector<float>()[15], float(prev));
  }
}
