// reduce, gather, scatter and all_to_all against values worked out by hand, for every dtype, every reduce op and
// every root, in the asynchronous and the blocking forms; their argument checks and descriptions; and
// batch_isend_irecv (a ring exchange in one batch, both directions, tags matched as MPI matches them).
#include <gtest/gtest.h>

#include <string>

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
using braid::dist::P2POp;
using braid::dist::ReduceOp;
using braid::dist::WorkHandle;
using braid::dist_test::all_ranks;
using braid::dist_test::expected;
using braid::dist_test::rank_tensor;
using braid::dist_test::value;

template <class T>
class RootedCollectives : public ::testing::Test {};
using Types = ::testing::Types<float, double, int64_t>;
TYPED_TEST_SUITE(RootedCollectives, Types);

}  // namespace

TYPED_TEST(RootedCollectives, ReduceToEveryDstWithEveryOp) {
  using T = TypeParam;
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  for (int dst = 0; dst < n; ++dst) {
    for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
      Tensor t = rank_tensor<T>(r, {3, 7});
      world->reduce(t, dst, op)->wait();
      auto got = t.to_vector<T>();
      for (int64_t i = 0; i < 21; ++i) {
        T want = r == dst ? expected<T>(op, all_ranks(n), i) : T(value(r, i));  // the others' stay as they were
        ASSERT_EQ(got[size_t(i)], want) << reduce_op_name(op) << " dst " << dst << " element " << i;
      }
    }
  }
}

TYPED_TEST(RootedCollectives, GatherToEveryDst) {
  using T = TypeParam;
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  for (int dst = 0; dst < n; ++dst) {
    const bool root = r == dst;
    Tensor input = rank_tensor<T>(r, {5});
    Tensor output = root ? braid::zeros({n, 5}, braid::dtype_of<T>::value) : Tensor();
    world->gather(output, input, dst)->wait();
    std::vector<T> got;
    if (root) {
      got = output.to_vector<T>();
      for (int k = 0; k < n; ++k)
        for (int64_t i = 0; i < 5; ++i) ASSERT_EQ(got[size_t(k * 5 + i)], T(value(k, i))) << "dst " << dst;
    }
    // In place on dst: its input is its own chunk of the output.
    Tensor out2 = root ? braid::zeros({n, 5}, braid::dtype_of<T>::value) : Tensor();
    Tensor in2 = input;
    if (root) {
      in2 = braid::ops::select(out2, 0, r);
      braid::ops::copy_(in2, input);
    }
    world->gather(out2, in2, dst)->wait();
    if (root) {
      EXPECT_EQ(out2.to_vector<T>(), got);
    }
  }
}

TYPED_TEST(RootedCollectives, ScatterFromEverySrc) {
  using T = TypeParam;
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  for (int src = 0; src < n; ++src) {
    Tensor input = r == src ? rank_tensor<T>(src, {n * 4}) : Tensor();
    Tensor output = braid::zeros({2, 2}, braid::dtype_of<T>::value);
    world->scatter(output, input, src)->wait();
    auto got = output.to_vector<T>();
    for (int64_t i = 0; i < 4; ++i) ASSERT_EQ(got[size_t(i)], T(value(src, r * 4 + i))) << "src " << src;
  }
}

TYPED_TEST(RootedCollectives, AllToAllSwapsChunks) {
  using T = TypeParam;
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  Tensor input = rank_tensor<T>(r, {n, 3});
  Tensor output = braid::zeros({n * 3}, braid::dtype_of<T>::value);
  world->all_to_all(output, input)->wait();
  auto got = output.to_vector<T>();
  // Chunk j of the output is chunk r of rank j's input.
  for (int j = 0; j < n; ++j)
    for (int64_t i = 0; i < 3; ++i) ASSERT_EQ(got[size_t(j * 3 + i)], T(value(j, r * 3 + i))) << "from rank " << j;
}

TEST(RootedCollectives, BlockingFormsMatchTheHandValues) {
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  Tensor t = rank_tensor<double>(r, {6});
  braid::dist::reduce(t, n - 1, ReduceOp::Max);
  if (r == n - 1) {
    for (int64_t i = 0; i < 6; ++i)
      ASSERT_EQ(t.to_vector<double>()[size_t(i)], expected<double>(ReduceOp::Max, all_ranks(n), i));
  }
  Tensor gathered = r == 0 ? braid::zeros({n * 2}, DType::Int64) : Tensor();
  braid::dist::gather(gathered, braid::full({2}, double(r), DType::Int64), 0);
  if (r == 0) {
    for (int k = 0; k < n; ++k) EXPECT_EQ(gathered.to_vector<int64_t>()[size_t(2 * k + 1)], k);
  }
  Tensor part = braid::zeros({3});
  braid::dist::scatter(part, r == 0 ? rank_tensor<float>(7, {n * 3}) : Tensor(), 0, world);
  EXPECT_EQ(part.to_vector<float>()[2], float(value(7, r * 3 + 2)));
  Tensor swapped = braid::zeros({n});
  braid::dist::all_to_all(swapped, braid::full({n}, double(r)));
  for (int j = 0; j < n; ++j) EXPECT_EQ(swapped.to_vector<float>()[size_t(j)], float(j));
}

TEST(RootedCollectives, DescriptionsNameTheRoot) {
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  Tensor t = braid::zeros({4});
  WorkHandle w = world->reduce(t, 0, ReduceOp::Min);
  EXPECT_EQ(w->description(), "reduce(min, [4] float32, dst 0)");
  w->wait();
  w = world->gather(r == 0 ? braid::zeros({n * 4}) : Tensor(), t, 0);
  EXPECT_EQ(w->description(), "gather([4] float32, dst 0)");
  w->wait();
  w = world->scatter(t, r == 0 ? braid::zeros({n * 4}) : Tensor(), 0);
  EXPECT_EQ(w->description(), "scatter([4] float32, src 0)");
  w->wait();
  Tensor a = braid::zeros({n * 2}, DType::Int64), b = braid::zeros({n * 2}, DType::Int64);
  w = world->all_to_all(b, a);
  EXPECT_EQ(w->description(),
            "all_to_all([" + std::to_string(n * 2) + "] int64 -> [" + std::to_string(n * 2) + "] int64)");
  w->wait();
}

TEST(RootedCollectives, ArgumentErrorsThrowOnTheCallersThread) {
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  Tensor t = braid::zeros({4});
  EXPECT_THROW(world->reduce(t, n), braid::Error);
  EXPECT_THROW(world->reduce(t, -1), braid::Error);
  EXPECT_THROW(world->reduce(braid::ops::transpose(braid::zeros({2, 3}), 0, 1), 0), braid::Error);
  EXPECT_THROW(world->gather(braid::zeros({n * 4}), t, n), braid::Error);
  EXPECT_THROW(world->scatter(t, braid::zeros({n * 4}), -1), braid::Error);
  // On the root: the output (gather) / input (scatter) must hold size() chunks of the same dtype.
  if (r == 0) {
    EXPECT_THROW(world->gather(braid::zeros({n * 4 + 1}), t, 0), braid::Error);
    EXPECT_THROW(world->gather(braid::zeros({n * 4}, DType::Float64), t, 0), braid::Error);
    EXPECT_THROW(world->gather(Tensor(), t, 0), braid::Error);
    EXPECT_THROW(world->scatter(t, braid::zeros({n * 4 - 1}), 0), braid::Error);
    EXPECT_THROW(world->scatter(t, Tensor(), 0), braid::Error);
  }
  EXPECT_THROW(world->all_to_all(braid::zeros({n * 4}), braid::zeros({n * 4 + 1})), braid::Error);
  if (n > 1) {
    EXPECT_THROW(world->all_to_all(braid::zeros({n * 4 + 1}), braid::zeros({n * 4 + 1})), braid::Error);
    Tensor both = braid::zeros({n * 4});
    EXPECT_THROW(world->all_to_all(both, both), braid::Error);
  }
  EXPECT_THROW(world->all_to_all(braid::zeros({n * 4}, DType::Int64), braid::zeros({n * 4})), braid::Error);
  try {
    world->gather(braid::zeros({1}), t, n + 3);
    FAIL() << "no error";
  } catch (const braid::Error& e) {
    EXPECT_NE(std::string(e.what()).find("gather: dst " + std::to_string(n + 3) + " is not a rank of this group"),
              std::string::npos)
        << e.what();
  }
  // Nothing was queued by the failed calls: the group still works.
  Tensor one = braid::ones({1});
  world->all_reduce(one)->wait();
  EXPECT_EQ(one.item<float>(), float(n));
}

// ---- batch_isend_irecv ----

// Every rank sends to the next and receives from the previous in one batch, large enough for the rendezvous
// protocol: as separate blocking sends this would deadlock; in both directions at once, receives listed first.
TEST(BatchIsendIrecv, RingExchangeInOneBatch) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  const int next = (r + 1) % n, prev = (r + n - 1) % n;
  const int64_t count = 1 << 20;
  Tensor to_next = braid::full({count}, double(r));
  Tensor to_prev = braid::full({count}, double(100 + r));
  Tensor from_prev = braid::zeros({count});
  Tensor from_next = braid::zeros({count});
  std::vector<P2POp> ops = {P2POp::irecv(from_prev, prev, 1), P2POp::irecv(from_next, next, 2),
                            P2POp::isend(to_next, next, 1), P2POp::isend(to_prev, prev, 2)};
  WorkHandle work = world->batch_isend_irecv(ops);
  work->wait();
  EXPECT_TRUE(work->is_completed());
  EXPECT_EQ(from_prev.to_vector<float>()[count - 1], float(prev));
  EXPECT_EQ(from_next.to_vector<float>()[0], float(100 + next));
  EXPECT_EQ(work->description(),
            "batch_isend_irecv(irecv([1048576] float32, src " + std::to_string(prev) +
                ", tag 1), irecv([1048576] float32, src " + std::to_string(next) +
                ", tag 2), isend([1048576] float32, dst " + std::to_string(next) +
                ", tag 1), isend([1048576] float32, dst " + std::to_string(prev) + ", tag 2))");
  // The blocking form, the ring the other way round.
  Tensor got = braid::zeros({3}, DType::Int64);
  braid::dist::batch_isend_irecv({P2POp::isend(braid::full({3}, double(r), DType::Int64), prev),
                                  P2POp::irecv(got, next)});
  EXPECT_EQ(got.to_vector<int64_t>()[2], next);
}

// Messages match by tag, and in order among equal tags: rank 0 sends tags 1, 2, 1; rank 1 receives 2, 1, 1.
TEST(BatchIsendIrecv, TagsMatchAsMpiMatchesThem) {
  REQUIRE_RANKS(2);
  auto world = braid::dist::world();
  const int r = world->rank();
  if (r == 0) {
    braid::dist::batch_isend_irecv({P2POp::isend(braid::full({4}, 1.0), 1, 1),
                                    P2POp::isend(braid::full({4}, 2.0), 1, 2),
                                    P2POp::isend(braid::full({4}, 3.0), 1, 1)});
  } else if (r == 1) {
    Tensor a = braid::zeros({4}), b = braid::zeros({4}), c = braid::zeros({4});
    braid::dist::batch_isend_irecv({P2POp::irecv(a, 0, 2), P2POp::irecv(b, 0, 1), P2POp::irecv(c, 0, 1)});
    EXPECT_EQ(a.to_vector<float>()[0], 2.0f);
    EXPECT_EQ(b.to_vector<float>()[0], 1.0f);
    EXPECT_EQ(c.to_vector<float>()[0], 3.0f);
  }
  world->barrier()->wait();
}

TEST(BatchIsendIrecv, WrongSizeAndBadArgumentsThrow) {
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  EXPECT_THROW(world->batch_isend_irecv({}), braid::Error);
  EXPECT_THROW(world->batch_isend_irecv({P2POp::isend(braid::zeros({2}), r)}), braid::Error);  // to itself
  EXPECT_THROW(world->batch_isend_irecv({P2POp::irecv(braid::zeros({2}), n)}), braid::Error);
  EXPECT_THROW(world->batch_isend_irecv({P2POp::isend(Tensor(), 0)}), braid::Error);
  if (n < 2) return;
  EXPECT_THROW(world->batch_isend_irecv({P2POp::isend(braid::zeros({2}), (r + 1) % n, -1)}), braid::Error);
  if (r == 0) world->batch_isend_irecv({P2POp::isend(braid::ones({3}), 1, 4)})->wait();
  if (r == 1) {
    Tensor bigger = braid::zeros({5});
    WorkHandle w = world->batch_isend_irecv({P2POp::irecv(bigger, 0, 4)});
    EXPECT_THROW(w->wait(), braid::Error);
    EXPECT_NE(w->exception(), nullptr);
  }
  world->barrier()->wait();
}

// ---- NCCL (CUDA tensors); these need a GPU per rank and skip without one ----

TEST(RootedCollectivesNccl, OnCudaTensors) {
  if (!braid::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (braid::cuda::device_count() < braid::dist::local_world_size()) GTEST_SKIP() << "fewer GPUs than local ranks";
  auto world = braid::dist::world();
  const int n = world->size(), r = world->rank();
  braid::Device device = braid::Device::cuda(braid::dist::local_rank());
  auto cpu = [](const Tensor& t) { return braid::ops::to_device(t, braid::Device::cpu()); };
  auto gpu = [&](const Tensor& t) { return braid::ops::to_device(t, device); };
  for (ReduceOp op : {ReduceOp::Sum, ReduceOp::Avg, ReduceOp::Max, ReduceOp::Min}) {
    Tensor t = gpu(rank_tensor<double>(r, {10}));
    world->reduce(t, n - 1, op)->wait();
    auto got = cpu(t).to_vector<double>();
    for (int64_t i = 0; i < 10; ++i)
      ASSERT_NEAR(got[size_t(i)], r == n - 1 ? expected<double>(op, all_ranks(n), i) : value(r, i), 1e-12);
  }
  Tensor out = r == 0 ? braid::zeros({n * 3}, device) : Tensor();
  world->gather(out, gpu(rank_tensor<float>(r, {3})), 0)->wait();
  if (r == 0) {
    for (int k = 0; k < n; ++k) EXPECT_EQ(cpu(out).to_vector<float>()[size_t(3 * k + 1)], float(value(k, 1)));
  }
  Tensor part = braid::zeros({2}, device);
  world->scatter(part, r == 0 ? gpu(rank_tensor<float>(0, {n * 2})) : Tensor(), 0)->wait();
  EXPECT_EQ(cpu(part).to_vector<float>()[1], float(value(0, r * 2 + 1)));
  Tensor swapped = braid::zeros({n}, device);
  world->all_to_all(swapped, gpu(braid::full({n}, double(r))))->wait();
  for (int j = 0; j < n; ++j) EXPECT_EQ(cpu(swapped).to_vector<float>()[size_t(j)], float(j));
  if (n >= 2) {
    const int next = (r + 1) % n, prev = (r + n - 1) % n;
    Tensor got = braid::zeros({16}, device);
    world->batch_isend_irecv({P2POp::isend(gpu(braid::full({16}, double(r))), next), P2POp::irecv(got, prev)})
        ->wait();
    EXPECT_EQ(cpu(got).to_vector<float>()[15], float(prev));
  }
}
