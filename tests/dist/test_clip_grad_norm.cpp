// dist::clip_grad_norm_ against the unsplit model: a Linear weight split by rows across the ranks (with parallel
// attributes) plus a replicated bias must give the norm and the clipped gradients of one process holding the whole
// parameters, for the 2-norm and the max norm, in data x tensor and pipeline x tensor layouts. Runs under mpiexec
// with any number of ranks (the layouts that need an even world skip otherwise), and as a single process.
#include <braid/braid.h>
#include <braid/dist/clip_grad_norm.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"

namespace braid {
namespace {

constexpr int64_t kRows = 12, kCols = 5;  // 12 rows split evenly over 1, 2, 3 or 4 ranks
const double kInf = std::numeric_limits<double>::infinity();

// A layer's gradients, the same on every rank (drawn from a fixed seed). Dyadic values with few bits make every
// sum of squares exact in float64, whatever the order of summation, so the split norm must equal the unsplit one
// exactly; otherwise they are a real backward's gradients.
struct LayerGrads {
  std::vector<float> weight;  // [kRows, kCols]
  std::vector<float> bias;    // [kRows]
};

LayerGrads dyadic_grads(uint64_t seed) {
  Generator g(seed);
  LayerGrads out;
  for (int64_t i = 0; i < kRows * kCols; ++i) out.weight.push_back(float(int64_t(g.next() % 81) - 40) / 16.0f);
  for (int64_t i = 0; i < kRows; ++i) out.bias.push_back(float(int64_t(g.next() % 81) - 40) / 16.0f);
  return out;
}

LayerGrads backward_grads(uint64_t seed) {
  Generator g(seed);
  nn::Linear fc(kCols, kRows);
  Tensor x = randn({7, kCols}, {}, &g), c = randn({7, kRows}, {}, &g);
  sum(fc(x) * c * 3.0).backward();
  return {fc->weight.grad().to_vector<float>(), fc->bias.grad().to_vector<float>()};
}

Tensor leaf_with_grad(const std::vector<float>& grad, const Shape& shape) {
  Tensor p = zeros(shape);
  p.requires_grad_();
  p.set_grad(from_vector(grad, shape));
  return p;
}

std::vector<float> rows(const std::vector<float>& m, int64_t begin, int64_t end) {
  return {m.begin() + begin * kCols, m.begin() + end * kCols};
}

// The unsplit layer's parameters on one process, and the norm optim::clip_grad_norm_ gives them.
struct Reference {
  Tensor weight, bias;
  double norm;
};

Reference reference(const LayerGrads& grads, double max_norm, double norm_type) {
  Reference r{leaf_with_grad(grads.weight, {kRows, kCols}), leaf_with_grad(grads.bias, {kRows}), 0};
  r.norm = optim::clip_grad_norm_({r.weight, r.bias}, max_norm, norm_type);
  return r;
}

// This rank's part of the layer: rows [shard * n, (shard + 1) * n) of the weight, sharded over `group` of
// `shards` ranks, and the whole (replicated) bias.
std::vector<Tensor> shard_of(const LayerGrads& grads, int64_t shard, int64_t shards,
                             const std::shared_ptr<dist::ProcessGroup>& group) {
  int64_t n = kRows / shards;
  Tensor weight = leaf_with_grad(rows(grads.weight, shard * n, (shard + 1) * n), {n, kCols});
  nn::set_parallel_attributes(weight, {.shard_dim = 0, .num_shards = shards, .shard_rank = shard, .group = group});
  return {weight, leaf_with_grad(grads.bias, {kRows})};
}

void expect_clipped_like(const std::vector<Tensor>& part, const Reference& ref, int64_t shard, int64_t shards,
                         bool exact) {
  int64_t n = kRows / shards;
  std::vector<float> want_w = rows(ref.weight.grad().to_vector<float>(), shard * n, (shard + 1) * n);
  std::vector<float> want_b = ref.bias.grad().to_vector<float>();
  std::vector<float> got_w = part[0].grad().to_vector<float>(), got_b = part[1].grad().to_vector<float>();
  if (exact) {
    EXPECT_EQ(got_w, want_w);
    EXPECT_EQ(got_b, want_b);
    return;
  }
  for (size_t i = 0; i < want_w.size(); ++i) EXPECT_FLOAT_EQ(got_w[i], want_w[i]) << "weight " << i;
  for (size_t i = 0; i < want_b.size(); ++i) EXPECT_FLOAT_EQ(got_b[i], want_b[i]) << "bias " << i;
}

void expect_norm(double got, double want, bool exact) {
  if (exact)
    EXPECT_EQ(got, want);
  else
    EXPECT_NEAR(got, want, 1e-12 * want);
}

// The group among `lists` that holds this rank; every rank creates all of them, in the same order.
std::shared_ptr<dist::ProcessGroup> my_group(const std::vector<std::vector<int>>& lists) {
  std::shared_ptr<dist::ProcessGroup> mine;
  for (const auto& ranks : lists) {
    auto g = dist::new_group(ranks);
    for (int r : ranks)
      if (r == dist::rank()) mine = g;
  }
  return mine;
}

struct Case {
  bool exact;
  double norm_type;
  double max_norm;  // below the norm (clips) or far above it (leaves the gradients alone)
};

std::vector<Case> cases() {
  return {{true, 2.0, 1.5}, {true, kInf, 0.75}, {false, 2.0, 0.5}, {false, kInf, 0.1}, {true, 2.0, 1e6}};
}

std::string describe(const Case& c) {
  return std::string(c.exact ? "dyadic" : "backward") + " gradients, norm_type " + std::to_string(c.norm_type) +
         ", max_norm " + std::to_string(c.max_norm);
}

TEST(ClipGradNorm, RowShardedLinearEqualsTheUnsplitLayer) {
  int64_t world = dist::world_size(), rank = dist::rank();
  ASSERT_EQ(kRows % world, 0);
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    LayerGrads grads = c.exact ? dyadic_grads(7) : backward_grads(7);
    Reference ref = reference(grads, c.max_norm, c.norm_type);
    std::vector<Tensor> part = shard_of(grads, rank, world, dist::world());
    double norm = dist::clip_grad_norm_(part, c.max_norm, c.norm_type);
    expect_norm(norm, ref.norm, c.exact);
    expect_clipped_like(part, ref, rank, world, c.exact);
  }
}

// Two replicas of a model split over two ranks each (tensor innermost): the shards are summed over their own
// tensor-parallel group only, and the replicated bias counts once, not once per shard.
TEST(ClipGradNorm, DataTimesTensorLayout) {
  int world = dist::world_size();
  if (world % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  int tp = world / 2, rank = dist::rank();
  if (kRows % tp != 0) GTEST_SKIP() << "the rows do not split over " << tp << " ranks";
  std::vector<std::vector<int>> tensor_lists(2);
  for (int r = 0; r < world; ++r) tensor_lists[size_t(r / tp)].push_back(r);
  auto tensor_group = my_group(tensor_lists);
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    LayerGrads grads = c.exact ? dyadic_grads(11) : backward_grads(11);
    Reference ref = reference(grads, c.max_norm, c.norm_type);
    std::vector<Tensor> part = shard_of(grads, rank % tp, tp, tensor_group);
    double norm = dist::clip_grad_norm_(part, c.max_norm, c.norm_type);
    expect_norm(norm, ref.norm, c.exact);
    expect_clipped_like(part, ref, rank % tp, tp, c.exact);
  }
}

// Two pipeline stages, each a layer split over the stage's tensor-parallel ranks: the group passed is the one across
// stages, and the norm is that of both unsplit layers together.
TEST(ClipGradNorm, PipelineStagesSumOverTheStageGroup) {
  int world = dist::world_size();
  if (world % 2 != 0) GTEST_SKIP() << "needs an even number of ranks";
  int tp = world / 2, rank = dist::rank(), stage = rank / tp, shard = rank % tp;
  if (kRows % tp != 0) GTEST_SKIP() << "the rows do not split over " << tp << " ranks";
  std::vector<std::vector<int>> tensor_lists(2), stage_lists(static_cast<size_t>(tp));
  for (int r = 0; r < world; ++r) {
    tensor_lists[size_t(r / tp)].push_back(r);
    stage_lists[size_t(r % tp)].push_back(r);
  }
  auto tensor_group = my_group(tensor_lists);
  auto stage_group = my_group(stage_lists);
  for (const Case& c : cases()) {
    SCOPED_TRACE(describe(c));
    LayerGrads first = c.exact ? dyadic_grads(21) : backward_grads(21);
    LayerGrads second = c.exact ? dyadic_grads(22) : backward_grads(22);
    // One process holding both layers whole.
    Reference a{leaf_with_grad(first.weight, {kRows, kCols}), leaf_with_grad(first.bias, {kRows}), 0};
    Reference b{leaf_with_grad(second.weight, {kRows, kCols}), leaf_with_grad(second.bias, {kRows}), 0};
    double want = optim::clip_grad_norm_({a.weight, a.bias, b.weight, b.bias}, c.max_norm, c.norm_type);

    std::vector<Tensor> part = shard_of(stage == 0 ? first : second, shard, tp, tensor_group);
    double norm = dist::clip_grad_norm_(part, c.max_norm, stage_group, c.norm_type);
    expect_norm(norm, want, c.exact);
    expect_clipped_like(part, stage == 0 ? a : b, shard, tp, c.exact);
  }
}

TEST(ClipGradNorm, RefusesAGroupThatWouldCountShardsTwice) {
  int world = dist::world_size();
  if (world < 2) GTEST_SKIP() << "needs a sharded parameter";
  LayerGrads grads = dyadic_grads(31);
  std::vector<Tensor> part = shard_of(grads, dist::rank(), world, dist::world());
  std::vector<float> before = part[0].grad().to_vector<float>();
  // The world is the shard group itself here: summing over it again would count every shard world times.
  test::expect_error([&] { dist::clip_grad_norm_(part, 1e-3, dist::world()); },
                     {"clip_grad_norm_", "shares ranks", "pipeline stages"});
  EXPECT_EQ(part[0].grad().to_vector<float>(), before) << "a refused call must not clip";

  // Attributes that disagree with their group.
  Tensor w = leaf_with_grad(rows(grads.weight, 0, 1), {1, kCols});
  nn::set_parallel_attributes(w, {.shard_dim = 0, .num_shards = world + 1, .shard_rank = 0, .group = dist::world()});
  test::expect_error([&] { dist::clip_grad_norm_({w}, 1.0); },
                     {"clip_grad_norm_", "parameter 0", std::to_string(world + 1) + " shards", "group has"});
}

// The single-process optim::clip_grad_norm_ would see only this rank's shard and clip by too small a norm.
TEST(ClipGradNorm, SingleProcessClippingRefusesAShard) {
  LayerGrads grads = dyadic_grads(37);
  Tensor w = leaf_with_grad(rows(grads.weight, 0, 1), {1, kCols});
  nn::set_parallel_attributes(w, {.shard_dim = 0, .num_shards = 2, .shard_rank = 0, .group = dist::world()});
  std::vector<float> before = w.grad().to_vector<float>();
  test::expect_error([&] { optim::clip_grad_norm_({w}, 1e-3); },
                     {"clip_grad_norm_", "parameter 0", "dist::clip_grad_norm_"});
  EXPECT_EQ(w.grad().to_vector<float>(), before);
}

}  // namespace
}  // namespace braid
