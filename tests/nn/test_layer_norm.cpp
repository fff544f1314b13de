// layer_norm as one fused kernel: values against a direct computation in plain C++ (one and several normalised
// dims, with and without affine parameters, rows with a large offset), float64 finite-difference gradients for
// every combination of the parameters, gradients of the parameters alone, and the saved-tensor version checks.
// (test_layers.cpp and test_gradcheck.cpp keep their layer_norm tests; these cover the fused paths they do not.)
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"
#include "gradcheck.h"

using namespace braid;
namespace F = braid::nn::functional;
using braid::test::gradcheck;
using braid::test::Inputs;

namespace {

// Each row of `cols` elements normalised with its biased variance, then weight and bias (empty: none), in double.
std::vector<double> direct_layer_norm(const std::vector<double>& x, int64_t cols, const std::vector<double>& w,
                                      const std::vector<double>& b, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / size_t(cols); ++r) {
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j) mean += x[r * size_t(cols) + size_t(j)];
    mean /= double(cols);
    for (int64_t j = 0; j < cols; ++j) var += std::pow(x[r * size_t(cols) + size_t(j)] - mean, 2);
    const double rstd = 1 / std::sqrt(var / double(cols) + eps);
    for (int64_t j = 0; j < cols; ++j) {
      double v = (x[r * size_t(cols) + size_t(j)] - mean) * rstd;
      if (!w.empty()) v *= w[size_t(j)];
      if (!b.empty()) v += b[size_t(j)];
      y[r * size_t(cols) + size_t(j)] = v;
    }
  }
  return y;
}

std::vector<double> values(const Tensor& t) { return t.defined() ? t.to_vector<double>() : std::vector<double>{}; }

double max_diff(const std::vector<double>& a, const std::vector<double>& b) {
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) m = std::max(m, std::abs(a[i] - b[i]));
  return a.size() == b.size() ? m : INFINITY;
}

Tensor leaf(const Shape& s, Generator& g) { return randn(s, DType::Float64, &g).requires_grad_(); }

}  // namespace

TEST(LayerNormFused, MatchesDirectComputation) {
  Generator g(1);
  struct Case {
    Shape input, normalized;
    bool weight, bias;
  };
  for (const Case& c : {Case{{5, 7}, {7}, true, true}, Case{{2, 3, 130}, {130}, true, false},
                        Case{{4, 3, 5}, {3, 5}, false, true}, Case{{3, 1000}, {1000}, false, false}}) {
    for (DType dt : {DType::Float64, DType::Float32}) {
      SCOPED_TRACE(testing::Message() << shape_str(c.input) << " over " << shape_str(c.normalized) << " " << dt);
      Tensor x = normal(c.input, 0.5, 2, dt, &g);
      Tensor w = c.weight ? randn(c.normalized, dt, &g) : Tensor(), b = c.bias ? randn(c.normalized, dt, &g) : Tensor();
      Tensor y = F::layer_norm(x, c.normalized, w, b, 1e-3);
      EXPECT_EQ(y.shape(), c.input);
      EXPECT_LE(max_diff(y.to_vector<double>(), direct_layer_norm(x.to_vector<double>(), shape_numel(c.normalized),
                                                                  values(w), values(b), 1e-3)),
                dt == DType::Float64 ? 1e-12 : 3e-6);
    }
  }
}

// Rows far from zero: a variance taken as E[x^2] - E[x]^2 in float32 would lose every digit here (the squares
// are near 1e8, where float32's spacing is 8). What remains is the mean rounded to float32 (spacing 1e-3 at 1e4),
// as in PyTorch, which subtracts a float32 mean too.
TEST(LayerNormFused, RowsWithALargeOffsetKeepTheirDigits) {
  Generator g(2);
  Tensor x = ops::affine(randn({4, 64}, DType::Float32, &g), 1, 1e4);
  Tensor y = F::layer_norm(x, {64}, Tensor(), Tensor());
  EXPECT_LE(max_diff(y.to_vector<double>(), direct_layer_norm(x.to_vector<double>(), 64, {}, {}, 1e-5)), 1e-3);
  Tensor x64 = ops::to_dtype(x, DType::Float64);
  EXPECT_LE(max_diff(F::layer_norm(x64, {64}, Tensor(), Tensor()).to_vector<double>(),
                     direct_layer_norm(x64.to_vector<double>(), 64, {}, {}, 1e-5)),
            1e-10);
}

TEST(LayerNormFused, NonContiguousInput) {
  Generator g(3);
  Tensor x = randn({6, 4}, DType::Float64, &g);
  Tensor y = F::layer_norm(ops::transpose(x, 0, 1), {6}, Tensor(), Tensor());
  EXPECT_LE(max_diff(y.to_vector<double>(),
                     direct_layer_norm(ops::contiguous(ops::transpose(x, 0, 1)).to_vector<double>(), 6, {}, {}, 1e-5)),
            1e-12);
}

TEST(LayerNormFused, GradientsMatchFiniteDifferences) {
  Generator g(4);
  for (int mask = 0; mask < 4; ++mask) {
    const bool has_w = mask & 1, has_b = mask & 2;
    SCOPED_TRACE(testing::Message() << "weight " << has_w << " bias " << has_b);
    Tensor x = leaf({3, 2, 5}, g), w = leaf({2, 5}, g), b = leaf({2, 5}, g);
    Inputs in{x};
    if (has_w) in.push_back(w);
    if (has_b) in.push_back(b);
    EXPECT_TRUE(gradcheck(
        [&](const Inputs& i) {
          return F::layer_norm(i[0], {2, 5}, has_w ? i[1] : Tensor(), has_b ? i[has_w ? 2 : 1] : Tensor(), 1e-2);
        },
        in));
  }
}

// Only some of input, weight and bias require grad: each of them alone, and the parameters without the input.
TEST(LayerNormFused, GradientsOfSomeInputsAlone) {
  Generator g(5);
  Tensor x = leaf({4, 6}, g), w = leaf({6}, g), b = leaf({6}, g);
  EXPECT_TRUE(gradcheck([&](const Inputs& i) { return F::layer_norm(i[0], {6}, w.detach(), b.detach()); }, {x}));
  EXPECT_TRUE(gradcheck([&](const Inputs& i) { return F::layer_norm(x.detach(), {6}, i[0], b.detach()); }, {w}));
  EXPECT_TRUE(gradcheck([&](const Inputs& i) { return F::layer_norm(x.detach(), {6}, w.detach(), i[0]); }, {b}));
  EXPECT_TRUE(gradcheck([&](const Inputs& i) { return F::layer_norm(x.detach(), {6}, i[0], i[1]); }, {w, b}));
}

// The parameters' gradients sum over many rows (split over threads): against a direct float64 sum.
TEST(LayerNormFused, ParameterGradientsSumOverManyRows) {
  Generator g(6);
  const int64_t rows = 3000, cols = 24;
  Tensor x = randn({rows, cols}, DType::Float64, &g), dy = randn({rows, cols}, DType::Float64, &g);
  Tensor w = randn({cols}, DType::Float64, &g).requires_grad_(), b = zeros({cols}, DType::Float64).requires_grad_();
  F::layer_norm(x, {cols}, w, b).backward(dy);
  const std::vector<double> xhat = direct_layer_norm(x.to_vector<double>(), cols, {}, {}, 1e-5);
  const std::vector<double> d = dy.to_vector<double>();
  std::vector<double> dw(cols, 0.0), db(cols, 0.0);
  for (size_t i = 0; i < d.size(); ++i) dw[i % cols] += d[i] * xhat[i], db[i % cols] += d[i];
  EXPECT_LE(max_diff(w.grad().to_vector<double>(), dw), 1e-10);
  EXPECT_LE(max_diff(b.grad().to_vector<double>(), db), 1e-10);
}

TEST(LayerNormFused, SavedInputWrittenInPlaceIsAnError) {
  Generator g(7);
  Tensor x = leaf({2, 4}, g), w = leaf({4}, g);
  Tensor y = F::layer_norm(x, {4}, w, Tensor());
  {
    NoGradGuard no_grad;
    ops::mul_(w, 2.0);  // the input's gradient reads the weight
  }
  EXPECT_CONTAINS(braid::test::error_of([&] { sum(y).backward(); }), "LayerNormBackward");
}
