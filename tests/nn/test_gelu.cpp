// GELU's two forms under PyTorch's names: approximate="none" (x * Phi(x), the exact normal CDF) and "tanh"
// (0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))), through braid::gelu and nn::GELU. Values are checked against
// the formulas in long double here (to an absolute 1e-15 far left, where 1 + erf and 1 + tanh cancel); the golden
// test checks them against PyTorch itself and the gradient check checks both backwards.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"
#include "braid/kernels/cpu/gelu.h"
#include "braid/kernels/functors.h"

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

// ---- float32 on the CPU: the vectorised span kernels (kernels/cpu/gelu.cpp) -----------------------------------------

long double gelu_exact_derivative(long double x) {
  const long double pdf = std::exp(-0.5L * x * x) / std::sqrt(2 * 3.14159265358979323846264338327950288L);
  return 0.5L * (1 + std::erf(x / std::sqrt(2.0L))) + x * pdf;
}
long double gelu_tanh_derivative(long double x) {
  const long double beta = std::sqrt(2.0L / 3.14159265358979323846264338327950288L), kappa = 0.044715L;
  const long double t = std::tanh(beta * (x + kappa * x * x * x));
  return 0.5L * (1 + t) + 0.5L * x * (1 - t * t) * beta * (1 + 3 * kappa * x * x);
}

// [-10, 10] in steps of 2^-10, then large and tiny magnitudes of both signs (denormal and FLT_MAX included).
std::vector<float> float_points() {
  std::vector<float> p;
  for (int i = -10 * 1024; i <= 10 * 1024; ++i) p.push_back(float(i) / 1024);
  for (float m : {1e-40f, 1e-30f, 1e-10f, 1e-4f, 11.f, 20.f, 1e3f, 1e4f, 1e6f, 1e10f, 1e13f, 1e20f, 3e38f,
                  std::numeric_limits<float>::max()}) {
    p.push_back(m);
    p.push_back(-m);
  }
  return p;
}

// Each value within 2e-6 of the float64 formula applied to the float input (relative above magnitude 1).
void expect_float_close(const Tensor& got, const std::vector<float>& x, long double (*f)(long double),
                        const char* what) {
  ASSERT_EQ(got.dtype(), DType::Float32);
  const std::vector<float> g = got.to_vector<float>();
  ASSERT_EQ(g.size(), x.size());
  int bad = 0;
  for (size_t i = 0; i < g.size() && bad < 5; ++i) {
    const double want = double(f(x[i]));
    const bool ok = std::abs(double(g[i]) - want) <= 2e-6 * std::max(1.0, std::abs(want));
    bad += !ok;
    EXPECT_TRUE(ok) << what << " at x = " << x[i] << ": got " << g[i] << ", float64 formula " << want;
  }
}

TEST(GeluFloat, ForwardAndBackwardOfBothFormsStayWithin2e6OfFloat64) {
  const std::vector<float> p = float_points();
  const int64_t n = int64_t(p.size());
  for (const char* approximate : {"none", "tanh"}) {
    const bool exact = std::string_view(approximate) == "none";
    Tensor x = from_vector(p).requires_grad_(true);
    Tensor y = gelu(x, approximate);
    expect_float_close(y, p, exact ? gelu_exact : gelu_tanh, exact ? "gelu" : "gelu tanh");
    y.backward(ones({n}, DType::Float32));
    expect_float_close(x.grad(), p, exact ? gelu_exact_derivative : gelu_tanh_derivative,
                       exact ? "gelu backward" : "gelu tanh backward");
  }
}

// Infinities and NaN give what the per-element functors (the math CUDA runs) give: inf or NaN forward, NaN
// backward at +-inf where the product rule meets inf * 0.
TEST(GeluFloat, InfinityAndNaNAsTheFunctors) {
  const float inf = std::numeric_limits<float>::infinity(), nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> p = {inf, -inf, nan, -nan, 1.f};
  const std::vector<float> ones_grad(p.size(), 1.f);
  auto same = [](float got, float want) { return std::isnan(want) ? std::isnan(got) : got == want; };
  const Tensor x = from_vector(p), g = from_vector(ones_grad);
  const std::vector<float> fwd = ops::unary(ops::UnaryOp::Gelu, x).to_vector<float>(),
                           fwd_tanh = ops::unary(ops::UnaryOp::GeluTanh, x).to_vector<float>(),
                           bwd = ops::activation_backward(ops::ActivationBackward::Gelu, g, x).to_vector<float>(),
                           bwd_tanh =
                               ops::activation_backward(ops::ActivationBackward::GeluTanh, g, x).to_vector<float>();
  for (size_t i = 0; i < p.size(); ++i) {
    EXPECT_PRED2(same, fwd[i], kernels::Gelu{}(p[i])) << "gelu(" << p[i] << ")";
    EXPECT_PRED2(same, fwd_tanh[i], kernels::GeluTanh{}(p[i])) << "gelu tanh(" << p[i] << ")";
    EXPECT_PRED2(same, bwd[i], kernels::GeluBackward{}(1.f, p[i])) << "gelu backward(" << p[i] << ")";
    EXPECT_PRED2(same, bwd_tanh[i], kernels::GeluTanhBackward{}(1.f, p[i])) << "gelu tanh backward(" << p[i] << ")";
  }
}

// Float GELU on the CPU runs the span kernels, not the per-element functors (whose libm calls do not vectorise):
// the ops' results are bit for bit the kernels', on a size that ends mid-block.
TEST(GeluFloat, CpuOpsRunTheVectorisedKernels) {
  std::vector<float> p;
  for (int i = 0; i < 1000; ++i) p.push_back(-6.f + 0.01237f * float(i));
  std::vector<float> g(p.size());
  for (size_t i = 0; i < g.size(); ++i) g[i] = 0.5f + 0.001f * float(i);
  const int64_t n = int64_t(p.size());
  std::vector<float> want(p.size());
  const Tensor x = from_vector(p), grad = from_vector(g);
  kernels::cpu::gelu(want.data(), p.data(), n);
  EXPECT_EQ(ops::unary(ops::UnaryOp::Gelu, x).to_vector<float>(), want);
  kernels::cpu::gelu_tanh(want.data(), p.data(), n);
  EXPECT_EQ(ops::unary(ops::UnaryOp::GeluTanh, x).to_vector<float>(), want);
  kernels::cpu::gelu_backward(want.data(), g.data(), p.data(), n);
  EXPECT_EQ(ops::activation_backward(ops::ActivationBackward::Gelu, grad, x).to_vector<float>(), want);
  kernels::cpu::gelu_tanh_backward(want.data(), g.data(), p.data(), n);
  EXPECT_EQ(ops::activation_backward(ops::ActivationBackward::GeluTanh, grad, x).to_vector<float>(), want);
}

// An element's result does not depend on where it lies in memory or in its block: the same values one float
// further along (an unaligned start, a different tail) give the same bits.
TEST(GeluFloat, KernelResultsDoNotDependOnAlignment) {
  std::vector<float> p, g;
  for (int i = 0; i < 700; ++i) {
    p.push_back(-7.f + 0.0213f * float(i));
    g.push_back(1.f - 0.0007f * float(i));
  }
  const int64_t n = int64_t(p.size());
  std::vector<float> full(p.size()), shifted(p.size() - 1);
  auto expect_same = [&](const char* what) {
    for (int64_t i = 1; i < n; ++i) ASSERT_EQ(full[i], shifted[i - 1]) << what << " at x = " << p[i];
  };
  kernels::cpu::gelu(full.data(), p.data(), n);
  kernels::cpu::gelu(shifted.data(), p.data() + 1, n - 1);
  expect_same("gelu");
  kernels::cpu::gelu_tanh(full.data(), p.data(), n);
  kernels::cpu::gelu_tanh(shifted.data(), p.data() + 1, n - 1);
  expect_same("gelu tanh");
  kernels::cpu::gelu_backward(full.data(), g.data(), p.data(), n);
  kernels::cpu::gelu_backward(shifted.data(), g.data() + 1, p.data() + 1, n - 1);
  expect_same("gelu backward");
  kernels::cpu::gelu_tanh_backward(full.data(), g.data(), p.data(), n);
  kernels::cpu::gelu_tanh_backward(shifted.data(), g.data() + 1, p.data() + 1, n - 1);
  expect_same("gelu tanh backward");
}

}  // namespace
