// The region functions' backward is the adjoint of their forward, in float64, for group sizes 1, 2 and 4 (the
// dot-product test, exact for these linear maps where a finite difference would only approximate it):
// <forward(x), y> = <x, backward(y)>, each inner product taken once for a replicated tensor and summed over the
// group for one that differs by rank (a shard, or a partial sum whose consumers differ by rank).
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <functional>
#include <string>

#include "test_tensor_parallel_util.h"

namespace braid {
namespace {

enum class Kind { Replicated, PerRank };

struct RegionCase {
  const char* name;
  Kind in, out;
  std::function<Shape(int64_t tp)> input_shape;
  std::function<Tensor(const Tensor&, const dist::ProcessGroupPtr&)> region;
};

double inner(const Tensor& a, const Tensor& b, Kind kind, const dist::ProcessGroupPtr& group) {
  Tensor local = ops::reshape(ops::sum(ops::binary(ops::BinaryOp::Mul, a, b)), {1});
  if (kind == Kind::PerRank) dist::all_reduce(local, dist::ReduceOp::Sum, group);
  return local.item<double>();
}

Tensor draw(const Shape& shape, Kind kind, uint64_t seed) {
  Generator g(kind == Kind::Replicated ? seed : seed + 1 + uint64_t(dist::rank()));
  return randn(shape, DType::Float64, &g);
}

const std::vector<RegionCase>& region_cases() {
  static const std::vector<RegionCase> cases = {
      {"copy_to_tensor_parallel_region", Kind::Replicated, Kind::PerRank,
       [](int64_t) {
         return Shape{2, 3, 4};
       },
       dist::copy_to_tensor_parallel_region},
      {"reduce_from_tensor_parallel_region", Kind::PerRank, Kind::Replicated,
       [](int64_t) {
         return Shape{2, 3, 4};
       },
       dist::reduce_from_tensor_parallel_region},
      {"scatter_to_tensor_parallel_region", Kind::Replicated, Kind::PerRank,
       [](int64_t tp) {
         return Shape{2, 3, 2 * tp};
       },
       dist::scatter_to_tensor_parallel_region},
      {"gather_from_tensor_parallel_region", Kind::PerRank, Kind::Replicated,
       [](int64_t) {
         return Shape{2, 3, 2};
       },
       dist::gather_from_tensor_parallel_region},
      {"scatter_to_sequence_parallel_region", Kind::Replicated, Kind::PerRank,
       [](int64_t tp) {
         return Shape{2, 2 * tp, 3};
       },
       [](const Tensor& x, const dist::ProcessGroupPtr& g) {
         return dist::scatter_to_sequence_parallel_region(x, g, 1);
       }},
      {"gather_from_sequence_parallel_region", Kind::PerRank, Kind::PerRank,
       [](int64_t) {
         return Shape{2, 2, 3};
       },
       [](const Tensor& x, const dist::ProcessGroupPtr& g) {
         return dist::gather_from_sequence_parallel_region(x, g, 1);
       }},
      {"reduce_scatter_to_sequence_parallel_region", Kind::PerRank, Kind::PerRank,
       [](int64_t tp) {
         return Shape{2, 2 * tp, 3};
       },
       [](const Tensor& x, const dist::ProcessGroupPtr& g) {
         return dist::reduce_scatter_to_sequence_parallel_region(x, g, 1);
       }},
  };
  return cases;
}

class TensorParallelRegions : public testing::TestWithParam<int> {};

TEST_P(TensorParallelRegions, BackwardIsTheAdjointOfForward) {
  const int tp = GetParam();
  TP_GROUP_OR_SKIP(group, tp);
  uint64_t seed = 100;
  for (const auto& c : region_cases()) {
    Tensor x = tp_test::leaf(draw(c.input_shape(tp), c.in, seed++));
    Tensor out = c.region(x, group);
    Tensor y = draw(out.shape(), c.out, seed++);
    out.backward(y);
    ASSERT_TRUE(x.grad().defined()) << c.name;
    double lhs = inner(out.detach(), y, c.out, group), rhs = inner(x.detach(), x.grad(), c.in, group);
    EXPECT_NEAR(lhs, rhs, 1e-12 * (std::abs(lhs) + 1)) << c.name << " at tensor-parallel size " << tp;
    EXPECT_NE(lhs, 0) << c.name;
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, TensorParallelRegions, testing::Values(1, 2, 4));

// A size that does not split along the chosen dim names the region, the shape and the group's size.
TEST(TensorParallelRegionErrors, UnsplittableDimIsAnError) {
  auto group = tp_test::tp_group(2);
  if (!group) GTEST_SKIP() << "needs a tensor-parallel group of 2";
  dist_test::expect_contains(
      dist_test::error_of([&] {
        dist::scatter_to_sequence_parallel_region(zeros({2, 3, 4}), group, 1);
      }),
      "scatter_to_sequence_parallel_region: dim 1 of shape [2, 3, 4] (3) does not divide by the tensor-parallel "
      "size 2");
}

}  // namespace
}  // namespace braid
