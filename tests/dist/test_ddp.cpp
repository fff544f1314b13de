// DistributedDataParallel against single-process training: every rank trains on its slice of a global batch, and
// the parameters must equal those of one model trained on the whole batch. Runs under mpiexec with any number of
// ranks, and as a single process (world size 1).
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <string>
#include <vector>

#include "../test_util.h"

namespace braid {
namespace {

using dist::DDPOptions;
using dist::DistributedDataParallel;

constexpr int64_t kIn = 8, kHidden = 16, kOut = 4;
constexpr int64_t kBatchPerRank = 4;

struct Mlp : nn::Module {
  nn::Linear fc1 = register_module("fc1", nn::Linear(kIn, kHidden));
  nn::Linear fc2 = register_module("fc2", nn::Linear(kHidden, kHidden));
  nn::Linear fc3 = register_module("fc3", nn::Linear(kHidden, kOut));
  Tensor forward(const Tensor& x) { return fc3(braid::tanh(fc2(relu(fc1(x))))); }
};

// An MLP with a branch that the forward pass may leave out.
struct Branchy : nn::Module {
  nn::Linear fc1 = register_module("fc1", nn::Linear(kIn, kHidden));
  nn::Linear fc2 = register_module("fc2", nn::Linear(kHidden, kOut));
  nn::Linear extra = register_module("extra", nn::Linear(kIn, kOut));
  Tensor forward(const Tensor& x, bool use_extra) {
    Tensor y = fc2(relu(fc1(x)));
    return use_extra ? y + extra(x) : y;
  }
};

// Forwards to another group and lets a test watch each all_reduce as it is issued.
class RecordingGroup : public dist::ProcessGroup {
 public:
  explicit RecordingGroup(std::shared_ptr<dist::ProcessGroup> inner) : inner_(std::move(inner)) {}
  bool is_member() const override { return inner_->is_member(); }
  int rank() const override { return inner_->rank(); }
  int size() const override { return inner_->size(); }
  const std::vector<int>& ranks() const override { return inner_->ranks(); }
  dist::WorkHandle all_reduce(const Tensor& t, dist::ReduceOp op) override {
    all_reduce_numels.push_back(t.numel());
    if (on_all_reduce) on_all_reduce(t);
    return inner_->all_reduce(t, op);
  }
  dist::WorkHandle broadcast(const Tensor& t, int root) override {
    ++broadcasts;
    return inner_->broadcast(t, root);
  }
  dist::WorkHandle all_gather(const Tensor& o, const Tensor& i) override { return inner_->all_gather(o, i); }
  dist::WorkHandle reduce_scatter(const Tensor& o, const Tensor& i, dist::ReduceOp op) override {
    return inner_->reduce_scatter(o, i, op);
  }
  dist::WorkHandle reduce(const Tensor& t, int dst, dist::ReduceOp op) override { return inner_->reduce(t, dst, op); }
  dist::WorkHandle gather(const Tensor& o, const Tensor& i, int dst) override { return inner_->gather(o, i, dst); }
  dist::WorkHandle scatter(const Tensor& o, const Tensor& i, int src) override { return inner_->scatter(o, i, src); }
  dist::WorkHandle all_to_all(const Tensor& o, const Tensor& i) override { return inner_->all_to_all(o, i); }
  dist::WorkHandle batch_isend_irecv(const std::vector<dist::P2POp>& ops) override {
    return inner_->batch_isend_irecv(ops);
  }
  dist::WorkHandle send(const Tensor& t, int dst, int tag) override { return inner_->send(t, dst, tag); }
  dist::WorkHandle recv(const Tensor& t, int src, int tag) override { return inner_->recv(t, src, tag); }
  dist::WorkHandle barrier() override { return inner_->barrier(); }

  std::vector<int64_t> all_reduce_numels;
  int broadcasts = 0;
  std::function<void(const Tensor&)> on_all_reduce;

 private:
  std::shared_ptr<dist::ProcessGroup> inner_;
};

struct Batch {
  Tensor x, y;
};

// The same on every rank: drawn from its own generator.
Batch global_batch(int64_t rows, uint64_t seed) {
  Generator gen(seed);
  Tensor x = randn({rows, kIn}, {}, &gen);
  Tensor y = randn({rows, kOut}, {}, &gen);
  return {x, y};
}

Tensor rows_of(const Tensor& t, int64_t start, int64_t n) { return ops::contiguous(ops::narrow(t, 0, start, n)); }

Batch slice_of(const Batch& b, int rank) {
  return {rows_of(b.x, rank * kBatchPerRank, kBatchPerRank), rows_of(b.y, rank * kBatchPerRank, kBatchPerRank)};
}

// |a - b| <= rtol * max(|a|, |b|) + atol for every parameter element, by name.
void expect_params_close(const nn::Module& got, const nn::Module& want, const std::string& what, double rtol = 1e-5,
                         double atol = 1e-6) {
  auto g = got.named_parameters(), w = want.named_parameters();
  ASSERT_EQ(g.size(), w.size());
  for (size_t i = 0; i < g.size(); ++i) {
    ASSERT_EQ(g[i].first, w[i].first);
    auto a = g[i].second.to_vector<double>(), b = w[i].second.to_vector<double>();
    ASSERT_EQ(a.size(), b.size());
    double worst = 0;
    size_t at = 0;
    for (size_t k = 0; k < a.size(); ++k) {
      double excess = std::abs(a[k] - b[k]) - (rtol * std::max(std::abs(a[k]), std::abs(b[k])) + atol);
      if (excess > worst) worst = excess, at = k;
    }
    EXPECT_EQ(worst, 0) << what << ": " << g[i].first << "[" << at << "] is " << a[at] << ", expected " << b[at]
                        << " (rank " << dist::rank() << ")";
  }
}

optim::SGDOptions sgd_options() { return {.lr = 0.1, .momentum = 0.9}; }

std::string describe(const DDPOptions& o) {
  return "bucket_cap_bytes=" + std::to_string(o.bucket_cap_bytes) + " overlap=" + (o.overlap ? "on" : "off") +
         " gradient_as_bucket_view=" + (o.gradient_as_bucket_view ? "on" : "off");
}

std::vector<DDPOptions> bucket_variants() {
  std::vector<DDPOptions> out;
  for (size_t cap : {size_t(1), DDPOptions{}.bucket_cap_bytes, size_t(1) << 40})
    for (bool overlap : {true, false})
      for (bool view : {true, false})
        out.push_back(DDPOptions{.bucket_cap_bytes = cap, .overlap = overlap, .gradient_as_bucket_view = view});
  return out;
}

TEST(DistributedDataParallel, BroadcastsRankZerosParametersAtConstruction) {
  auto group = dist::world();
  manual_seed(7 + uint64_t(group->rank()));  // every rank starts from different weights
  Mlp model;
  manual_seed(7);
  Mlp rank0;
  DistributedDataParallel ddp(model, group);
  expect_params_close(model, rank0, "after construction", 0, 0);
}

// Trains a DDP model on `device` (each rank its slice) and a local reference on the whole global batch on the CPU
// for 3 SGD steps, and expects the same parameters.
// set_to_none=false keeps each .grad from step to step: with gradient_as_bucket_view, backward then accumulates
// straight into the bucket.
void expect_matches_single_process(const std::shared_ptr<dist::ProcessGroup>& group, const DDPOptions& options,
                                   Device device, double rtol, double atol, bool set_to_none = true) {
  SCOPED_TRACE(describe(options) + " zero_grad(set_to_none=" + (set_to_none ? "true" : "false") + ")");
  const int world = group->size(), rank = group->rank();
  // Seeded by the global rank: the reference starts from the group's rank 0, which need not be the world's.
  manual_seed(7 + uint64_t(dist::rank()));
  Mlp model;
  model.to(device);
  manual_seed(7 + uint64_t(group->ranks().front()));
  Mlp reference;
  {
    DistributedDataParallel ddp(model, group, options);
    optim::SGD optimizer(model.parameters(), sgd_options());
    optim::SGD ref_optimizer(reference.parameters(), sgd_options());
    for (int step = 0; step < 3; ++step) {
      Batch global = global_batch(world * kBatchPerRank, 100 + step);
      Batch mine = slice_of(global, rank);
      optimizer.zero_grad(set_to_none);
      nn::mse_loss(model.forward(ops::to_device(mine.x, device)), ops::to_device(mine.y, device)).backward();
      optimizer.step();
      ref_optimizer.zero_grad();
      nn::mse_loss(reference.forward(global.x), global.y).backward();
      ref_optimizer.step();
    }
  }
  model.to(Device::cpu());
  expect_params_close(model, reference, "after 3 steps", rtol, atol);
}

TEST(DistributedDataParallel, MatchesSingleProcessOnTheGlobalBatch) {
  for (const DDPOptions& options : bucket_variants())
    for (bool set_to_none : {true, false})
      expect_matches_single_process(dist::world(), options, Device::cpu(), 1e-5, 1e-6, set_to_none);
}

TEST(DistributedDataParallel, GradientsAreViewsOfTheBucketsOnlyWhenAsked) {
  auto group = dist::world();
  for (bool view : {true, false}) {
    SCOPED_TRACE(view ? "gradient_as_bucket_view" : "copies");
    manual_seed(5);
    Mlp model;
    DistributedDataParallel ddp(model, group, DDPOptions{.gradient_as_bucket_view = view});  // one bucket
    Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 9), group->rank());
    for (int pass = 0; pass < 2; ++pass) {
      model.zero_grad(pass == 0);  // the second pass keeps the .grad tensors of the first
      nn::mse_loss(model.forward(b.x), b.y).backward();
      auto params = model.parameters();
      const void* bucket = params.front().grad().storage().ptr.get();
      for (auto& p : params) EXPECT_EQ(p.grad().storage().ptr.get() == bucket, view || &p == &params.front());
    }
  }
}

TEST(DistributedDataParallel, NoSyncAccumulatesLocallyAndTheNextSyncedPassAveragesTheSum) {
  auto group = std::make_shared<RecordingGroup>(dist::world());
  const int world = group->size(), rank = group->rank();
  constexpr int kMicro = 3;  // two no_sync micro-batches, then a synchronised one
  for (DDPOptions options : {DDPOptions{.bucket_cap_bytes = 1}, DDPOptions{}, DDPOptions{.overlap = false},
                             DDPOptions{.gradient_as_bucket_view = false}})
    for (bool set_to_none : {true, false}) {  // false: the passes accumulate into the bucket views
      SCOPED_TRACE(describe(options) + (set_to_none ? "" : " zero_grad(set_to_none=false)"));
      manual_seed(11);
      Mlp model, reference;
      manual_seed(11);
      Mlp local;  // what one rank computes on its own micro-batches, to check that no_sync stays local
      reference.load_state_dict(model.state_dict());
      local.load_state_dict(model.state_dict());
      DistributedDataParallel ddp(model, group, options);
      optim::SGD optimizer(model.parameters(), sgd_options());
      optim::SGD ref_optimizer(reference.parameters(), sgd_options());
      for (int step = 0; step < 3; ++step) {
        optimizer.zero_grad(set_to_none);
        ref_optimizer.zero_grad();
        local.zero_grad();
        for (int m = 0; m < kMicro; ++m) {
          Batch global = global_batch(world * kBatchPerRank, 1000 + 10 * step + m);
          Batch mine = slice_of(global, rank);
          // Each micro-batch's mean loss, divided by the number of micro-batches: the step sees the mean over all.
          if (m + 1 < kMicro) {
            auto guard = ddp.no_sync();
            size_t before = group->all_reduce_numels.size();
            (nn::mse_loss(model.forward(mine.x), mine.y) / double(kMicro)).backward();
            EXPECT_EQ(group->all_reduce_numels.size(), before) << "no_sync pass communicated";
            if (step == 0) {
              (nn::mse_loss(local.forward(mine.x), mine.y) / double(kMicro)).backward();
              expect_params_close(model, local, "(parameters, not yet trained)");
              for (size_t i = 0; i < model.parameters().size(); ++i) {
                auto g = model.parameters()[i].grad().to_vector<double>();
                auto l = local.parameters()[i].grad().to_vector<double>();
                for (size_t k = 0; k < g.size(); ++k) ASSERT_NEAR(g[k], l[k], 1e-6) << "no_sync gradient is not local";
              }
            }
          } else {
            (nn::mse_loss(model.forward(mine.x), mine.y) / double(kMicro)).backward();
          }
          (nn::mse_loss(reference.forward(global.x), global.y) / double(kMicro)).backward();
        }
        optimizer.step();
        ref_optimizer.step();
      }
      expect_params_close(model, reference, "after 3 accumulated steps");
    }
}

TEST(DistributedDataParallel, BucketsFollowReverseRegistrationOrderUpToTheCap) {
  auto group = dist::world();
  manual_seed(3);
  Mlp model;  // 0 fc1.weight 512 B, 1 fc1.bias 64 B, 2 fc2.weight 1024 B, 3 fc2.bias 64 B, 4 fc3.weight 256 B,
              // 5 fc3.bias 16 B
  using Assignment = std::vector<std::vector<size_t>>;
  {
    DistributedDataParallel ddp(model, group, {.bucket_cap_bytes = 1});
    EXPECT_EQ(ddp.bucket_assignment(), (Assignment{{5}, {4}, {3}, {2}, {1}, {0}}));
  }
  {
    DistributedDataParallel ddp(model, group);
    EXPECT_EQ(ddp.bucket_assignment(), (Assignment{{5, 4, 3, 2, 1, 0}}));
  }
  {
    // 16 + 256 fit in 300 bytes; fc2.weight (1024 B) is larger than the cap and sits alone.
    DistributedDataParallel ddp(model, group, {.bucket_cap_bytes = 300});
    EXPECT_EQ(ddp.bucket_assignment(), (Assignment{{5, 4}, {3}, {2}, {1}, {0}}));
  }
  {
    model.fc1->bias.requires_grad_(false);  // frozen parameters have no bucket
    DistributedDataParallel ddp(model, group, {.bucket_cap_bytes = 300});
    EXPECT_EQ(ddp.bucket_assignment(), (Assignment{{5, 4}, {3}, {2}, {0}}));
  }
  {
    struct Mixed : nn::Module {
      nn::Linear a = register_module("a", nn::Linear(2, 2, true, DType::Float64));
      nn::Linear b = register_module("b", nn::Linear(2, 2));
    } mixed;
    DistributedDataParallel ddp(mixed, group);  // one bucket per dtype
    EXPECT_EQ(ddp.bucket_assignment(), (Assignment{{3, 2}, {1, 0}}));
  }
}

TEST(DistributedDataParallel, FirstBucketLaunchedHoldsTheLastLayerAndStartsDuringBackward) {
  auto group = std::make_shared<RecordingGroup>(dist::world());
  for (bool overlap : {true, false}) {
    SCOPED_TRACE(overlap ? "overlap on" : "overlap off");
    manual_seed(5);
    Mlp model;
    DistributedDataParallel ddp(model, group, {.bucket_cap_bytes = 1, .overlap = overlap});
    ASSERT_EQ(ddp.bucket_assignment().front(), std::vector<size_t>{5});  // fc3.bias, registered last
    std::vector<bool> first_layer_grad_known;
    group->all_reduce_numels.clear();
    group->on_all_reduce = [&](const Tensor&) { first_layer_grad_known.push_back(model.fc1->weight.grad().defined()); };
    model.zero_grad();
    Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 9), group->rank());
    nn::mse_loss(model.forward(b.x), b.y).backward();
    group->on_all_reduce = nullptr;
    // One all-reduce per bucket, each of the bucket's gradients plus one flag per parameter and the leave slot, in
    // bucket order.
    std::vector<int64_t> expected;
    for (const auto& bucket : ddp.bucket_assignment()) {
      int64_t n = 1;
      for (size_t i : bucket) n += model.parameters()[i].numel() + 1;
      expected.push_back(n);
    }
    EXPECT_EQ(group->all_reduce_numels, expected);
    EXPECT_EQ(group->all_reduce_numels.front(), kOut + 2);
    ASSERT_FALSE(first_layer_grad_known.empty());
    // With overlap the last layer's bucket is on its way before backward reaches the first layer.
    EXPECT_EQ(first_layer_grad_known.front(), !overlap);
    EXPECT_TRUE(first_layer_grad_known.back());
  }
}

TEST(DistributedDataParallel, UnusedParameterIsAnErrorOnEveryRankNamingIt) {
  auto group = dist::world();
  manual_seed(2);
  Branchy model;
  DistributedDataParallel ddp(model, group);
  Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 4), group->rank());
  test::expect_error([&] { nn::mse_loss(model.forward(b.x, false), b.y).backward(); },
                     {"'extra.weight'", "'extra.bias'", "find_unused_parameters"});
  // The failed pass left nothing behind: a pass that uses everything synchronises normally.
  manual_seed(2);
  Branchy reference;
  model.zero_grad();
  nn::mse_loss(model.forward(b.x, true), b.y).backward();
  Batch global = global_batch(group->size() * kBatchPerRank, 4);
  nn::mse_loss(reference.forward(global.x, true), global.y).backward();
  for (size_t i = 0; i < model.parameters().size(); ++i) {
    auto g = model.parameters()[i].grad().to_vector<double>(), r = reference.parameters()[i].grad().to_vector<double>();
    for (size_t k = 0; k < g.size(); ++k) ASSERT_NEAR(g[k], r[k], 1e-5 * std::abs(r[k]) + 1e-6);
  }
}

TEST(DistributedDataParallel, ParameterUnusedOnSomeRanksIsAnErrorOnEveryRank) {
  auto group = dist::world();
  if (group->size() < 2) GTEST_SKIP() << "needs at least 2 ranks";
  manual_seed(2);
  Branchy model;
  DistributedDataParallel ddp(model, group);
  Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 4), group->rank());
  const bool use_extra = group->rank() == 0;
  test::expect_error([&] { nn::mse_loss(model.forward(b.x, use_extra), b.y).backward(); },
                     {"'extra.weight'", std::to_string(group->size() - 1) + " of " + std::to_string(group->size())});
}

// find_unused_parameters: a parameter no rank used keeps no gradient (the optimizer skips it); one that only some
// ranks used is averaged with zeros from the others, which is the gradient of the mean loss over all ranks.
TEST(DistributedDataParallel, FindUnusedParametersMatchesSingleProcess) {
  auto group = dist::world();
  const int world = group->size(), rank = group->rank();
  for (bool rank0_uses_extra : {false, true}) {
    for (bool overlap : {true, false}) {
      SCOPED_TRACE(std::string(rank0_uses_extra ? "rank 0 uses extra" : "nobody uses extra") +
                   (overlap ? ", overlap on" : ", overlap off"));
      manual_seed(21 + uint64_t(rank));
      Branchy model;
      manual_seed(21);
      Branchy reference;
      DistributedDataParallel ddp(model, group,
                                  {.bucket_cap_bytes = 300, .find_unused_parameters = true, .overlap = overlap});
      optim::SGD optimizer(model.parameters(), sgd_options());
      optim::SGD ref_optimizer(reference.parameters(), sgd_options());
      for (int step = 0; step < 3; ++step) {
        Batch global = global_batch(world * kBatchPerRank, 300 + step);
        Batch mine = slice_of(global, rank);
        optimizer.zero_grad();
        nn::mse_loss(model.forward(mine.x, rank0_uses_extra && rank == 0), mine.y).backward();
        EXPECT_EQ(model.extra->weight.grad().defined(), rank0_uses_extra);
        optimizer.step();
        // The mean over ranks of each rank's mean loss, each rank's slice through that rank's forward.
        ref_optimizer.zero_grad();
        Tensor total;
        for (int r = 0; r < world; ++r) {
          Batch s = slice_of(global, r);
          Tensor l = nn::mse_loss(reference.forward(s.x, rank0_uses_extra && r == 0), s.y);
          total = total.defined() ? total + l : l;
        }
        (total / double(world)).backward();
        ref_optimizer.step();
      }
      expect_params_close(model, reference, "after 3 steps");
    }
  }
}

TEST(DistributedDataParallel, GroupOfOneIsPlainLocalTraining) {
  auto world_group = dist::world();
  std::shared_ptr<dist::ProcessGroup> mine;
  for (int r = 0; r < world_group->size(); ++r)  // every rank makes every group, in the same order
    if (auto g = dist::new_group({r}); g->is_member()) mine = g;
  ASSERT_TRUE(mine);
  ASSERT_EQ(mine->size(), 1);
  manual_seed(31 + uint64_t(world_group->rank()));
  Mlp model;
  manual_seed(31 + uint64_t(world_group->rank()));
  Mlp reference;
  DistributedDataParallel ddp(model, mine, {.bucket_cap_bytes = 1});
  optim::SGD optimizer(model.parameters(), sgd_options());
  optim::SGD ref_optimizer(reference.parameters(), sgd_options());
  for (int step = 0; step < 3; ++step) {
    Batch b = slice_of(global_batch(world_group->size() * kBatchPerRank, 500 + step), world_group->rank());
    optimizer.zero_grad();
    nn::mse_loss(model.forward(b.x), b.y).backward();
    optimizer.step();
    ref_optimizer.zero_grad();
    nn::mse_loss(reference.forward(b.x), b.y).backward();
    ref_optimizer.step();
  }
  expect_params_close(model, reference, "after 3 local steps");
}

// A module with a buffer (as BatchNorm's running statistics would be), here a counter the forward pass bumps.
struct WithBuffer : nn::Module {
  nn::Linear fc = register_module("fc", nn::Linear(kIn, kOut));
  Tensor running = register_buffer("running", zeros({3}));
  Tensor forward(const Tensor& x) {
    ops::add_(running, ones({3}), 1.0 + dist::rank());  // a different update on every rank
    return fc(x);
  }
};

TEST(DistributedDataParallel, BuffersComeFromRankZeroAtConstructionAndAfterEachSynchronisedPass) {
  auto group = dist::world();
  const double rank = group->rank();
  for (bool broadcast_buffers : {true, false}) {
    SCOPED_TRACE(broadcast_buffers ? "broadcast_buffers" : "local buffers");
    WithBuffer model;
    ops::fill_(model.running, 10 * (rank + 1));
    DistributedDataParallel ddp(model, group, {.broadcast_buffers = broadcast_buffers});
    EXPECT_EQ(model.running.to_vector<double>(), std::vector<double>(3, 10.0));  // rank 0's, on every rank
    Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 2), group->rank());
    nn::mse_loss(model.forward(b.x), b.y).backward();
    // The forward added 1 + rank; afterwards the ranks agree on rank 0's value, or keep their own.
    EXPECT_EQ(model.running.to_vector<double>(), std::vector<double>(3, broadcast_buffers ? 11.0 : 11.0 + rank));
    {
      auto guard = ddp.no_sync();  // no communication at all in a no_sync pass
      nn::mse_loss(model.forward(b.x), b.y).backward();
    }
    EXPECT_EQ(model.running.to_vector<double>(),
              std::vector<double>(3, broadcast_buffers ? 12.0 + rank : 12.0 + 2 * rank));
  }
}

// DDP over CUDA tensors (NCCL): one GPU per rank on this host, else skipped.
TEST(DistributedDataParallel, CudaMatchesSingleProcessOnTheCpu) {
  if (!cuda::is_available() || cuda::device_count() < dist::local_world_size())
    GTEST_SKIP() << "needs one CUDA device per rank of this host";
  for (const DDPOptions& options : {DDPOptions{.bucket_cap_bytes = 1}, DDPOptions{.overlap = false}})
    expect_matches_single_process(dist::world(), options, Device::cuda(dist::local_rank()), 1e-4, 1e-5);
}

TEST(DistributedDataParallel, HooksAreInertOnceDestroyed) {
  auto group = std::make_shared<RecordingGroup>(dist::world());
  manual_seed(8);
  Mlp model;
  { DistributedDataParallel ddp(model, group); }
  group->all_reduce_numels.clear();
  Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 1), group->rank());
  nn::mse_loss(model.forward(b.x), b.y).backward();
  EXPECT_TRUE(group->all_reduce_numels.empty());
  EXPECT_TRUE(model.fc1->weight.grad().defined());
}

TEST(DistributedDataParallel, ModelConvertedAfterWrappingIsAnError) {
  auto group = dist::world();
  manual_seed(8);
  Mlp model;
  DistributedDataParallel ddp(model, group);
  model.to(DType::Float64);
  Batch b = slice_of(global_batch(group->size() * kBatchPerRank, 1), group->rank());
  test::expect_error(
      [&] {
        nn::mse_loss(model.forward(ops::to_dtype(b.x, DType::Float64)), ops::to_dtype(b.y, DType::Float64)).backward();
      },
      {"fc3.bias", "before wrapping"});
}

}  // namespace
}  // namespace braid

namespace braid {
namespace {

// A data-parallel group that is not the world (2 of the ranks, listed so that its rank 0 is not the world's): DDP
// broadcasts from the group's rank 0 and averages over the group only; the ranks outside it cannot wrap a model.
TEST(DistributedDataParallel, SubGroupMatchesSingleProcess) {
  const int n = dist::world_size();
  if (n < 3) GTEST_SKIP() << "needs 3 ranks (2 in the group, 1 outside)";
  auto group = dist::new_group({n - 1, 1});
  if (!group->is_member()) {
    Mlp model;
    try {
      DistributedDataParallel ddp(model, group);
      FAIL() << "a non-member group was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("is not a member of the data-parallel group [" + std::to_string(n - 1) +
                                           ", 1]"),
                std::string::npos)
          << e.what();
    }
    return;
  }
  for (const DDPOptions& options : {DDPOptions{}, DDPOptions{.bucket_cap_bytes = 1, .overlap = false}})
    expect_matches_single_process(group, options, Device::cpu(), 1e-5, 1e-6);
}

TEST(DistributedDataParallel, NullGroupIsAnError) {
  Mlp model;
  EXPECT_THROW(DistributedDataParallel(model, nullptr), Error);
}

// A tensor-parallel shard must not be broadcast or averaged across the ranks holding the other shards.
TEST(DistributedDataParallel, GroupSpanningAParametersShardsIsAnError) {
  auto world = dist::world();
  if (world->size() < 2) GTEST_SKIP() << "needs 2 ranks";
  Mlp model;
  Tensor weight = model.named_parameters()[0].second;
  std::vector<float> before = weight.to_vector<float>();
  nn::set_parallel_attributes(
      weight, {.shard_dim = 0, .num_shards = world->size(), .shard_rank = world->rank(), .group = world});
  test::expect_error([&] { DistributedDataParallel ddp(model, world); },
                     {"DistributedDataParallel", model.named_parameters()[0].first, "is sharded over the group",
                      "data-parallel group"});
  EXPECT_EQ(weight.to_vector<float>(), before) << "nothing may be broadcast before the check";
}

}  // namespace
}  // namespace braid
