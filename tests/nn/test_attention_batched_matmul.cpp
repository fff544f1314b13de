// ops::bmm, the batched GEMM under scaled_dot_product_attention: against ops::matmul for contiguous operands,
// transposed views (read in place), views BLAS cannot read (copied), one-matrix batches, an empty inner dimension,
// batches split over threads (the same values as on one thread), and its argument errors.
#include <gtest/gtest.h>

#include <vector>

#include "../test_util.h"
#include "braid/core/core.h"

using namespace braid;

namespace {

Tensor randn_of(const Shape& s, DType dt, uint64_t seed) {
  Generator g(seed);
  return randn(s, dt, &g);
}

}  // namespace

TEST(BatchedMatmul, MatchesMatmulForEveryOperandLayout) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Tensor a = randn_of({6, 5, 4}, dt, 1), b = randn_of({6, 4, 3}, dt, 2);
    const std::vector<double> want = ops::matmul(a, b).to_vector<double>();
    EXPECT_EQ(ops::bmm(a, b).to_vector<double>(), want);
    // Transposed views, as attention passes k^T and P^T.
    Tensor at = ops::transpose(ops::contiguous(ops::transpose(a, 1, 2)), 1, 2);
    Tensor bt = ops::transpose(ops::contiguous(ops::transpose(b, 1, 2)), 1, 2);
    EXPECT_EQ(ops::bmm(at, bt).to_vector<double>(), want);
    // Every other column of a wider matrix, and a permuted batch: strides BLAS cannot take for a matrix.
    Tensor wide = randn_of({6, 5, 8}, dt, 3);
    Tensor every_other = ops::narrow(ops::reshape(wide, {6, 5, 4, 2}), 3, 0, 1);
    every_other = ops::squeeze(every_other, 3);
    EXPECT_EQ(ops::bmm(every_other, b).to_vector<double>(),
              ops::matmul(ops::contiguous(every_other), b).to_vector<double>());
    Tensor batch_last = ops::permute(ops::contiguous(ops::permute(a, {1, 2, 0})), {2, 0, 1});
    EXPECT_EQ(ops::bmm(batch_last, b).to_vector<double>(), want);
  }
}

TEST(BatchedMatmul, OneMatrixAndEmptyInnerDimension) {
  Tensor a = randn_of({1, 3, 2}, DType::Float64, 4), b = randn_of({1, 2, 5}, DType::Float64, 5);
  EXPECT_EQ(ops::bmm(a, b).to_vector<double>(), ops::matmul(a, b).to_vector<double>());
  Tensor z = ops::bmm(zeros({4, 3, 0}), zeros({4, 0, 2}));
  EXPECT_EQ(z.shape(), (Shape{4, 3, 2}));
  for (double x : z.to_vector<double>()) EXPECT_EQ(x, 0.0);
  EXPECT_EQ(ops::bmm(zeros({0, 3, 2}), zeros({0, 2, 4})).shape(), (Shape{0, 3, 4}));
}

// With as many matrices as threads, each thread runs whole GEMMs; each matrix's value must not depend on that.
TEST(BatchedMatmul, SameValuesOnOneAndTwoThreads) {
  const int before = get_num_threads();
  Tensor a = randn_of({16, 33, 17}, DType::Float32, 6), b = randn_of({16, 17, 29}, DType::Float32, 7);
  set_num_threads(1);
  const std::vector<float> one = ops::bmm(a, b).to_vector<float>();
  set_num_threads(2);
  const std::vector<float> two = ops::bmm(a, b).to_vector<float>();
  set_num_threads(before);
  EXPECT_EQ(one, two);
}

TEST(BatchedMatmul, BadArgumentsAreErrors) {
  braid::test::expect_error([] { ops::bmm(zeros({2, 3}), zeros({2, 3, 4})); }, {"bmm", "[2, 3]"});
  braid::test::expect_error([] { ops::bmm(zeros({2, 3, 4}), zeros({3, 4, 5})); }, {"bmm", "[3, 4, 5]"});
  braid::test::expect_error([] { ops::bmm(zeros({2, 3, 4}), zeros({2, 5, 5})); }, {"bmm", "[2, 5, 5]"});
  braid::test::expect_error([] { ops::bmm(zeros({2, 3, 4}), zeros({2, 4, 5}, DType::Float64)); }, {"bmm"});
  braid::test::expect_error(
      [] {
        ops::bmm(zeros({2, 3, 4}, DType::Int64), zeros({2, 4, 5}, DType::Int64));
      },
      {"bmm", "int64"});
}
