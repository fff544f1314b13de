// GELU's two forms under PyTorch's names: approximate="none" (x * Phi(x), the exact normal CDF) and "tanh"
// (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))), through braid::gelu and nn::GELU. Values are checked against
// the formulas in long double here (to an absolute 1e-15 far left, where 1 + erf and 1 + tanh cancel); the golden
// test checks them against PyTorch itself and the gradient check checks both backwards.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::expect_error;

namespace {

const std::vector<double> kPoints = {-8, -3, -1.5, -1, -0.5, -0.1, 0, 0.1, 0.5, 1, 1.5, 3, 8};

long double gelu_exact(long double x) { return 0.5L * x * (1 + std::erf(x / std::sqrt(2.0L))); }
long double gelu_tanh(long double x) {
  const long double beta = std::sqrt(2.0L / 3.14159265358979323846264338327950288L);
  return 0.5L * x * (1 + std::tanh(beta * (x + 0.044715L * x * x * x)));
}

void expect_values(const Tensor& got, long double (*f)(long double), double rtol, double atol) {
  std::vector<double> g = got.to_vector<double>();
  ASSERT_EQ(g.size(), kPoints.size());
  for (size_t i = 0; i < g.size(); ++i) {
    const double want = double(f(kPoints[i]));
    EXPECT_NEAR(g[i], want, atol + rtol * std::abs(want)) << "x = " << kPoints[i];
  }
}

TEST(Gelu, TanhApproximationMatchesItsFormula) {
  expect_values(gelu(from_vector(kPoints), "tanh"), gelu_tanh, 1e-14, 1e-15);
  expect_values(gelu(ops::to_dtype(from_vector(kPoints), DType::Float32), "tanh"), gelu_tanh, 1e-6, 1e-7);
}

TEST(Gelu, NoneIsTheExactFormAndTheDefault) {
  Tensor x = from_vector(kPoints);
  expect_values(gelu(x, "none"), gelu_exact, 1e-14, 1e-15);
  EXPECT_EQ(gelu(x).to_vector<double>(), gelu(x, "none").to_vector<double>());
}

// The two forms differ by up to about 5e-4 (near |x| = 2.7): the tanh form is not the exact one renamed.
TEST(Gelu, TheTwoFormsDiffer) {
  Tensor x = from_vector(std::vector<double>{1.0, -2.7});
  std::vector<double> exact = gelu(x, "none").to_vector<double>(), approx = gelu(x, "tanh").to_vector<double>();
  EXPECT_NEAR(approx[0], 0.8411919906082768, 1e-15);  // torch.nn.functional.gelu(1.0, approximate="tanh")
  EXPECT_NEAR(exact[0], 0.8413447460685429, 1e-15);
  EXPECT_GT(std::abs(approx[1] - exact[1]), 4e-4);
}

TEST(Gelu, UnknownApproximationIsAnErrorNamingIt) {
  Tensor x = from_vector(kPoints);
  expect_error([&] { gelu(x, "erf"); }, {"gelu", "\"erf\"", "\"none\"", "\"tanh\""});
  expect_error([&] { gelu(x, "Tanh"); }, {"gelu", "\"Tanh\""});
  expect_error([] { nn::GELU({.approximate = "sigmoid"}); }, {"GELU", "\"sigmoid\"", "\"none\"", "\"tanh\""});
}

TEST(Gelu, ModuleTakesTheApproximation) {
  Tensor x = from_vector(kPoints);
  nn::GELU exact, named({.approximate = "none"}), approx({.approximate = "tanh"});
  EXPECT_EQ(exact->options.approximate, "none");
  EXPECT_EQ(approx->options.approximate, "tanh");
  EXPECT_EQ(exact(x).to_vector<double>(), gelu(x, "none").to_vector<double>());
  EXPECT_EQ(named(x).to_vector<double>(), gelu(x, "none").to_vector<double>());
  EXPECT_EQ(approx(x).to_vector<double>(), gelu(x, "tanh").to_vector<double>());
}

// The derivative of the tanh form at a few points, against the derivative of its formula (central differences
// in long double); the float64 gradient check covers the rest.
TEST(Gelu, TanhBackwardMatchesTheFormulasDerivative) {
  Tensor x = from_vector(kPoints).requires_grad_(true);
  gelu(x, "tanh").backward(ones({int64_t(kPoints.size())}, DType::Float64));
  std::vector<double> g = x.grad().to_vector<double>();
  for (size_t i = 0; i < kPoints.size(); ++i) {
    const long double h = 1e-6L, p = kPoints[i];
    const double want = double((gelu_tanh(p + h) - gelu_tanh(p - h)) / (2 * h));
    EXPECT_NEAR(g[i], want, 1e-9) << "x = " << kPoints[i];
  }
}

}  // namespace
