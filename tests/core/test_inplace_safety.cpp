// In-place safety (PyTorch's rules): every in-place op bumps its destination's version counter once per call
// (views share the counter), refuses a destination with internal overlap and a source that partially overlaps the
// destination, and accepts an exact alias (add_(a, a), copy_(a, a)) and disjoint views of one storage.
#include <gtest/gtest.h>

#include <vector>

#include "../test_util.h"
#include "braid/core/core.h"
#include "braid/core/memory_overlap.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;

namespace {

// [rows, cols] float64 holding 0, 1, 2, ... in row-major order.
Tensor iota(int64_t rows, int64_t cols) { return ops::view(arange(double(rows * cols), DType::Float64), {rows, cols}); }

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

// ---- partial overlap of source and destination ----

TEST(InplaceSafety, AddOfOwnTransposeThrowsAndLeavesTheDestination) {
  Tensor a = iota(3, 3);
  // Element-wise in place, a + a^T reads a[1][0] after writing it: the old code returned a wrong, asymmetric matrix.
  expect_error([&] { ops::add_(a, ops::transpose(a, 0, 1)); }, {"add_", "partially overlaps", "clone()"});
  EXPECT_EQ(values(a), values(iota(3, 3)));
  // With a copy of the source the sum is right (and symmetric).
  ops::add_(a, ops::clone(ops::transpose(a, 0, 1)));
  EXPECT_EQ(values(a), (std::vector<double>{0, 4, 8, 4, 8, 12, 8, 12, 16}));
}

TEST(InplaceSafety, ShiftedAndBroadcastViewsOfTheDestinationAreRefused) {
  Tensor x = iota(4, 2);
  expect_error([&] { ops::copy_(ops::narrow(x, 0, 0, 3), ops::narrow(x, 0, 1, 3)); }, {"copy_", "partially overlaps"});
  expect_error([&] { ops::add_(x, ops::select(x, 0, 0)); }, {"add_", "partially overlaps"});
  expect_error([&] { ops::affine_(ops::narrow(x, 0, 1, 3), ops::narrow(x, 0, 0, 3), 2); },
               {"affine_", "partially overlaps"});
  Tensor y = iota(4, 4);
  expect_error([&] { ops::add_(ops::narrow(y, 1, 0, 2), ops::narrow(y, 1, 1, 2)); }, {"add_", "partially overlaps"});
  EXPECT_EQ(values(x), values(iota(4, 2)));
  EXPECT_EQ(values(y), values(iota(4, 4)));
}

TEST(InplaceSafety, DisjointViewsOfOneStorageAreAccepted) {
  Tensor x = iota(4, 2);
  ops::copy_(ops::narrow(x, 0, 0, 2), ops::narrow(x, 0, 2, 2));
  EXPECT_EQ(values(x), (std::vector<double>{4, 5, 6, 7, 4, 5, 6, 7}));
  // Interleaved column blocks: their address ranges cross, their elements do not.
  Tensor y = iota(3, 4);
  ops::add_(ops::narrow(y, 1, 0, 2), ops::narrow(y, 1, 2, 2));
  EXPECT_EQ(values(y), (std::vector<double>{2, 4, 2, 3, 10, 12, 6, 7, 18, 20, 10, 11}));
  // Even and odd rows of a transposed view.
  Tensor z = iota(2, 3);
  Tensor zt = ops::transpose(z, 0, 1);
  ops::copy_(ops::select(zt, 1, 0), ops::select(zt, 1, 1));
  EXPECT_EQ(values(z), (std::vector<double>{3, 4, 5, 3, 4, 5}));
}

// ---- exact alias ----

TEST(InplaceSafety, AddOfItselfDoubles) {
  Tensor a = iota(2, 3);
  ops::add_(a, a);
  EXPECT_EQ(values(a), (std::vector<double>{0, 2, 4, 6, 8, 10}));
  Tensor t = ops::transpose(a, 0, 1);
  ops::add_(t, ops::transpose(a, 0, 1), 0.5);
  EXPECT_EQ(values(a), (std::vector<double>{0, 3, 6, 9, 12, 15}));
  ops::affine_(a, a, 2, 1);
  EXPECT_EQ(values(a), (std::vector<double>{1, 7, 13, 19, 25, 31}));
}

TEST(InplaceSafety, CopyOntoItselfKeepsTheValuesAndBumpsOnce) {
  Tensor a = iota(2, 3);
  uint64_t v0 = a.version();
  ops::copy_(a, a);
  EXPECT_EQ(values(a), values(iota(2, 3)));
  EXPECT_EQ(a.version(), v0 + 1);
  Tensor t = ops::transpose(a, 0, 1);
  ops::copy_(t, ops::transpose(a, 0, 1));
  EXPECT_EQ(values(a), values(iota(2, 3)));
  EXPECT_EQ(a.version(), v0 + 2);
}

// ---- internal overlap of the destination ----

TEST(InplaceSafety, WritesIntoAnExpandedTensorAreRefused) {
  Tensor base = zeros({1, 3}, DType::Float64);
  Tensor e = ops::expand(base, {4, 3});
  // The old code added four times into each element of base (and raced under OpenMP).
  expect_error([&] { ops::add_(e, ones({4, 3}, DType::Float64)); }, {"add_", "internal overlap", "expand"});
  expect_error([&] { ops::fill_(e, 2); }, {"fill_", "internal overlap"});
  expect_error([&] { ops::mul_(e, 2); }, {"mul_", "internal overlap"});
  expect_error([&] { ops::copy_(e, ones({4, 3}, DType::Float64)); }, {"copy_", "internal overlap"});
  expect_error([&] { ops::affine_(e, ones({4, 3}, DType::Float64), 2); }, {"affine_", "internal overlap"});
  EXPECT_EQ(values(base), (std::vector<double>{0, 0, 0}));
  EXPECT_EQ(base.version(), 0u);
}

TEST(InplaceSafety, ReadingFromAnExpandedTensorIsFine) {
  Tensor a = zeros({3, 2}, DType::Float64);
  ops::add_(a, ops::expand(from_vector(std::vector<double>{1, 2}, {1, 2}), {3, 2}));
  EXPECT_EQ(values(a), (std::vector<double>{1, 2, 1, 2, 1, 2}));
}

TEST(MemoryOverlap, InternalOverlapFollowsTheStrides) {
  EXPECT_FALSE(has_internal_overlap(iota(3, 4)));
  EXPECT_FALSE(has_internal_overlap(ops::transpose(iota(3, 4), 0, 1)));
  EXPECT_FALSE(has_internal_overlap(ops::narrow(iota(3, 4), 1, 1, 2)));
  EXPECT_TRUE(has_internal_overlap(ops::expand(zeros({3, 1}), {3, 5})));
  EXPECT_FALSE(has_internal_overlap(ops::expand(zeros({3}), {1, 3})));  // a new dim of size 1 repeats nothing
  Storage s = zeros({16}).storage();
  // Strides [2, 1] over [3, 3]: (0, 2) and (1, 0) are the same element.
  EXPECT_TRUE(has_internal_overlap(make_tensor(s, {3, 3}, {2, 1}, 0, DType::Float32)));
  // Strides [3, 2] over [2, 2] reach 0, 2, 3, 5: all apart.
  EXPECT_FALSE(has_internal_overlap(make_tensor(s, {2, 2}, {3, 2}, 0, DType::Float32)));
}

TEST(MemoryOverlap, ClassifiesPairsOfViews) {
  Tensor a = iota(4, 4);
  EXPECT_EQ(memory_overlap(a, a), MemoryOverlap::Full);
  EXPECT_EQ(memory_overlap(a, ops::view(a, {4, 4})), MemoryOverlap::Full);
  EXPECT_EQ(memory_overlap(a, ops::clone(a)), MemoryOverlap::None);
  EXPECT_EQ(memory_overlap(a, ops::transpose(a, 0, 1)), MemoryOverlap::Partial);
  EXPECT_EQ(memory_overlap(ops::narrow(a, 0, 0, 2), ops::narrow(a, 0, 2, 2)), MemoryOverlap::None);
  EXPECT_EQ(memory_overlap(ops::narrow(a, 1, 0, 2), ops::narrow(a, 1, 2, 2)), MemoryOverlap::None);
  EXPECT_EQ(memory_overlap(ops::narrow(a, 1, 0, 2), ops::narrow(a, 1, 1, 2)), MemoryOverlap::Partial);
  EXPECT_EQ(memory_overlap(ops::select(a, 1, 0), ops::select(a, 1, 3)), MemoryOverlap::None);
  EXPECT_EQ(memory_overlap(ops::select(a, 1, 0), ops::select(a, 0, 0)), MemoryOverlap::Partial);
  // The same bytes read as another dtype are not the same elements.
  Tensor f = zeros({8}, DType::Float32);
  Tensor g = make_tensor(f.storage(), {4}, {1}, 0, DType::Int64);
  EXPECT_EQ(memory_overlap(f, g), MemoryOverlap::Partial);
}

// ---- version counter ----

TEST(InplaceVersion, EachInPlaceOpBumpsOnce) {
  Tensor a = iota(2, 3);
  Tensor b = iota(2, 3);
  EXPECT_EQ(a.version(), 0u);
  ops::copy_(a, b);
  EXPECT_EQ(a.version(), 1u);
  ops::fill_(a, 1);
  EXPECT_EQ(a.version(), 2u);
  ops::fill_(ops::transpose(a, 0, 1), 2);  // not contiguous: one bump still
  EXPECT_EQ(a.version(), 3u);
  ops::add_(a, b);
  EXPECT_EQ(a.version(), 4u);
  ops::add_(a, b, 2);
  EXPECT_EQ(a.version(), 5u);
  ops::mul_(a, 3);
  EXPECT_EQ(a.version(), 6u);
  ops::affine_(a, b, 2, 1);
  EXPECT_EQ(a.version(), 7u);
  ops::copy_(a, ops::to_dtype(b, DType::Float32));  // converting: one bump still
  EXPECT_EQ(a.version(), 8u);
  EXPECT_EQ(b.version(), 0u);  // a source is only read
}

TEST(InplaceVersion, ViewsShareTheCounter) {
  Tensor a = iota(3, 4);
  Tensor row = ops::select(a, 0, 1);
  Tensor t = ops::transpose(a, 0, 1);
  ops::fill_(row, 5);
  EXPECT_EQ(a.version(), 1u);
  EXPECT_EQ(t.version(), 1u);
  ops::add_(t, t);
  EXPECT_EQ(row.version(), 2u);
  EXPECT_EQ(ops::clone(a).version(), 0u);  // a copy has a counter of its own
  EXPECT_EQ(values(row), (std::vector<double>{10, 10, 10, 10}));
}

TEST(InplaceVersion, OutOfPlaceOpsAndRefusedCallsLeaveItAlone) {
  Tensor a = iota(2, 2);
  Tensor b = iota(2, 2);
  ops::binary(ops::BinaryOp::Add, a, b);
  ops::matmul(a, b);
  ops::sum(a);
  ops::contiguous(ops::transpose(a, 0, 1));
  EXPECT_EQ(ops::to_dtype(a, DType::Float32).version(), 0u);
  EXPECT_EQ(ops::linear(a, b, from_vector(std::vector<double>{1, 2})).version(), 0u);
  EXPECT_EQ(ops::matmul(a, b).version(), 0u);
  EXPECT_EQ(a.version(), 0u);
  error_of([&] { ops::add_(a, ops::transpose(a, 0, 1)); });
  error_of([&] { ops::add_(a, zeros({3})); });
  EXPECT_EQ(a.version(), 0u);
}

TEST(InplaceVersion, GemmIntoBumpsItsOutputAndRefusesAliasedOperands) {
  Tensor a = iota(2, 2);
  Tensor b = iota(2, 2);
  Tensor out = zeros({2, 2}, DType::Float64);
  ops::gemm_into(out, a, b);
  EXPECT_EQ(out.version(), 1u);
  EXPECT_EQ(values(out), (std::vector<double>{2, 3, 6, 11}));
  EXPECT_EQ(a.version(), 0u);
  expect_error([&] { ops::gemm_into(a, a, b); }, {"matmul", "output", "first operand", "share memory"});
  expect_error([&] { ops::gemm_into(ops::transpose(b, 0, 1), a, b, 1, 1); }, {"matmul", "second operand"});
  EXPECT_EQ(values(a), values(iota(2, 2)));
  EXPECT_EQ(a.version(), 0u);
}

// ---- fused optimizer updates ----

TEST(InplaceVersion, SgdBumpsParameterAndMomentumNotGradient) {
  Tensor p = ones({4}, DType::Float64), g = full({4}, 0.5, DType::Float64), buf = zeros({4}, DType::Float64);
  ops::sgd_update_(p, g, buf, {0.1, 0.9, 0, 0, false, true});
  EXPECT_EQ(p.version(), 1u);
  EXPECT_EQ(buf.version(), 1u);
  EXPECT_EQ(g.version(), 0u);
  ops::sgd_update_(p, g, Tensor(), {0.1, 0, 0, 0, false, false});
  EXPECT_EQ(p.version(), 2u);
  EXPECT_EQ(buf.version(), 1u);
}

TEST(InplaceVersion, AdamBumpsParameterAndBothMoments) {
  Tensor p = ones({3}), g = full({3}, 0.5), m = zeros({3}), v = zeros({3});
  ops::adam_update_(p, g, m, v, {0.1, 0.9, 0.999, 1e-8, 0, 1, false});
  EXPECT_EQ(p.version(), 1u);
  EXPECT_EQ(m.version(), 1u);
  EXPECT_EQ(v.version(), 1u);
  EXPECT_EQ(g.version(), 0u);
}

TEST(InplaceSafety, OptimizerUpdatesRefuseSharedState) {
  Tensor p = ones({4}, DType::Float64);
  Tensor storage = zeros({6}, DType::Float64);
  // A gradient that is the parameter shifted by two elements: each write would feed a later read.
  expect_error(
      [&] {
        ops::sgd_update_(ops::narrow(storage, 0, 0, 4), ops::narrow(storage, 0, 2, 4), Tensor(),
                         {0.1, 0, 0, 0, false, true});
      },
      {"sgd_update_", "partially overlaps"});
  expect_error(
      [&] {
        ops::sgd_update_(p, ones({4}, DType::Float64), p, {0.1, 0.9, 0, 0, false, true});
      },
      {"sgd_update_", "parameter", "momentum buffer", "share memory"});
  Tensor m = zeros({4}, DType::Float64);
  expect_error(
      [&] {
        ops::adam_update_(p, ones({4}, DType::Float64), m, m, {0.1, 0.9, 0.999, 1e-8, 0, 1, false});
      },
      {"adam_update_", "exp_avg", "exp_avg_sq", "share memory"});
  EXPECT_EQ(p.version(), 0u);
  EXPECT_EQ(m.version(), 0u);
  // The gradient being the parameter itself is an exact alias: p -= lr * p.
  ops::sgd_update_(p, p, Tensor(), {0.25, 0, 0, 0, false, true});
  EXPECT_EQ(values(p), (std::vector<double>{0.75, 0.75, 0.75, 0.75}));
}
