// Finite-difference gradient checks in float64 for every differentiable op, layer and loss.
//
// gradcheck(f, inputs) reduces f's output to a scalar by a weighted sum with fixed random weights W (so every
// output element matters), takes the analytic gradient of that scalar from backward() (out.backward(W) is the
// vector-Jacobian product J^T W), and compares it with central differences (eps 1e-6) of the same scalar,
// element by element of every input, with |analytic - numeric| <= atol + rtol * |numeric|.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include "braid/braid.h"

using namespace braid;
namespace F = braid::nn::functional;

namespace {

using Inputs = std::vector<Tensor>;
using Fn = std::function<Tensor(const Inputs&)>;

struct GradcheckResult {
  bool ok = true;
  std::string message;
};

// Inputs must be contiguous float64 leaves that require grad; they are perturbed in place (so module parameters
// can be passed directly) and restored afterwards.
GradcheckResult gradcheck(const Fn& f, const Inputs& inputs, double eps = 1e-6, double rtol = 1e-5, double atol = 1e-7,
                          uint64_t weight_seed = 12345) {
  GradcheckResult r;
  std::ostringstream msg;
  auto fail = [&](const std::string& m) {
    r.ok = false;
    msg << m << "\n";
  };
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (x.dtype() != DType::Float64 || !x.is_contiguous() || !x.is_leaf() || !x.requires_grad()) {
      fail("input " + std::to_string(i) + " must be a contiguous float64 leaf that requires grad");
      r.message = msg.str();
      return r;
    }
    x.set_grad(Tensor());
  }

  // Analytic: backward of sum(out * W).
  Tensor out = f(inputs);
  if (!out.requires_grad()) {
    r.ok = false;
    r.message = "the output does not require grad";
    return r;
  }
  Generator wg(weight_seed);
  Tensor w = randn(out.shape(), DType::Float64, &wg);
  std::vector<double> wv = w.to_vector<double>();
  std::vector<double> out_value = out.to_vector<double>();
  out.backward(w);
  out = Tensor();

  auto objective = [&]() {
    NoGradGuard no_grad;
    std::vector<double> y = f(inputs).to_vector<double>();
    double s = 0;
    for (size_t k = 0; k < y.size(); ++k) s += y[k] * wv[k];
    return s;
  };
  {
    NoGradGuard no_grad;
    std::vector<double> again = f(inputs).to_vector<double>();
    if (again != out_value) fail("f is not deterministic (or differs with grad mode off)");
  }

  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    Tensor g = x.grad();
    std::vector<double> analytic(size_t(x.numel()), 0.0);
    if (g.defined()) {
      if (g.shape() != x.shape() || g.dtype() != x.dtype()) {
        fail("input " + std::to_string(i) + ": gradient " + shape_str(g.shape()) + " for input " +
             shape_str(x.shape()));
        continue;
      }
      analytic = g.to_vector<double>();
    }
    double* p = x.data<double>();
    int reported = 0;
    for (int64_t j = 0; j < x.numel(); ++j) {
      double orig = p[j];
      p[j] = orig + eps;
      double fp = objective();
      p[j] = orig - eps;
      double fm = objective();
      p[j] = orig;
      double numeric = (fp - fm) / (2 * eps);
      double a = analytic[size_t(j)];
      if (!(std::abs(a - numeric) <= atol + rtol * std::abs(numeric))) {
        r.ok = false;
        if (reported++ < 6)
          msg << "input " << i << " " << shape_str(x.shape()) << " element " << j << ": analytic " << a
              << (g.defined() ? "" : " (no gradient)") << ", numeric " << numeric << "\n";
      }
    }
    if (reported > 6) msg << "input " << i << ": " << reported << " mismatches in all\n";
  }
  r.message = msg.str();
  return r;
}

// EXPECT_GRADCHECK(f, inputs): variadic so that commas inside lambdas need no extra parentheses.
#define EXPECT_GRADCHECK(...)                      \
  do {                                             \
    GradcheckResult res_ = gradcheck(__VA_ARGS__); \
    EXPECT_TRUE(res_.ok) << res_.message;          \
  } while (0)

// Leaves to check against, drawn from one generator per test.
struct Maker {
  Generator g;
  explicit Maker(uint64_t seed) : g(seed) {}
  Tensor leaf(Tensor t) { return t.requires_grad_(true); }
  // N(0, 1)
  Tensor randn(const Shape& s) { return leaf(braid::randn(s, DType::Float64, &g)); }
  // [lo, hi)
  Tensor uniform(const Shape& s, double lo, double hi) { return leaf(braid::uniform(s, lo, hi, DType::Float64, &g)); }
  Tensor positive(const Shape& s) { return uniform(s, 0.5, 2.0); }
  // |x| in [0.3, 2), random sign: clear of the kinks at 0 (relu, abs) and of division by ~0.
  Tensor nonzero(const Shape& s) {
    std::vector<double> v = braid::uniform(s, 0.3, 2.0, DType::Float64, &g).to_vector<double>();
    std::vector<double> u = braid::rand(s, DType::Float64, &g).to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i)
      if (u[i] < 0.5) v[i] = -v[i];
    return leaf(from_vector(v, s));
  }
  // N(0, 1) moved at least `margin` away from each of `points` (for clamp's bounds).
  Tensor away_from(const Shape& s, std::vector<double> points, double margin) {
    std::vector<double> v = braid::randn(s, DType::Float64, &g).to_vector<double>();
    for (double& x : v)
      for (double p : points)
        if (std::abs(x - p) < margin) x = p + (x < p ? -margin : margin);
    return leaf(from_vector(v, s));
  }
  Tensor constant(const Shape& s) { return braid::randn(s, DType::Float64, &g); }
};

Tensor index_tensor(std::vector<int64_t> v, Shape s = {}) { return from_vector(v, s); }

}  // namespace

// ---- the checker itself catches wrong gradients ----

TEST(GradcheckSelfTest, DetectsAWrongBackward) {
  Maker m(1);
  Tensor x = m.randn({3, 2});
  // y = 3x with a backward that forgets the factor 3.
  Fn wrong = [](const Inputs& in) {
    Tensor out = ops::affine(in[0], 3, 0);
    if (!autograd::any_requires_grad({in[0]})) return out;
    return autograd::record("WrongBackward", out, {in[0]}, [](const Tensor& g) { return std::vector<Tensor>{g}; });
  };
  GradcheckResult r = gradcheck(wrong, {x});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("input 0 [3, 2] element 0: analytic"), std::string::npos) << r.message;

  // The same op with the right backward passes.
  Fn right = [](const Inputs& in) {
    Tensor out = ops::affine(in[0], 3, 0);
    if (!autograd::any_requires_grad({in[0]})) return out;
    return autograd::record("RightBackward", out, {in[0]},
                            [](const Tensor& g) { return std::vector<Tensor>{ops::affine(g, 3, 0)}; });
  };
  EXPECT_GRADCHECK(right, (Inputs{x}));
}

TEST(GradcheckSelfTest, DetectsAMissingGradientAndBadInputs) {
  Maker m(2);
  Tensor a = m.randn({4}), b = m.randn({4});
  // The graph only reaches a: b's contribution through a detached path is lost.
  GradcheckResult r = gradcheck([](const Inputs& in) { return mul(in[0], in[1].detach()); }, {a, b});
  EXPECT_FALSE(r.ok);
  EXPECT_NE(r.message.find("no gradient"), std::string::npos) << r.message;
  // Float32 inputs are refused: the check is meant for float64.
  Tensor f32 = ones({2}).requires_grad_(true);
  EXPECT_FALSE(gradcheck([](const Inputs& in) { return exp(in[0]); }, {f32}).ok);
}

// ---- element-wise ----

TEST(Gradcheck, BinaryOpsSameShape) {
  Maker m(10);
  Tensor a = m.randn({3, 4}), b = m.nonzero({3, 4}), pa = m.positive({3, 4});
  EXPECT_GRADCHECK([](const Inputs& in) { return add(in[0], in[1]); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return sub(in[0], in[1]); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return mul(in[0], in[1]); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return div(in[0], in[1]); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return pow(in[0], in[1]); }, (Inputs{pa, a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return maximum(in[0], in[1]); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return minimum(in[0], in[1]); }, (Inputs{a, b}));
  // The same input on both sides.
  EXPECT_GRADCHECK([](const Inputs& in) { return mul(in[0], in[0]); }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return div(in[0], in[0] * in[0]); }, (Inputs{b}));
}

TEST(Gradcheck, BinaryOpsBroadcasting) {
  Maker m(11);
  const std::vector<std::pair<Shape, Shape>> shapes = {{{3, 1}, {1, 4}}, {{2, 3, 4}, {4}}, {{4}, {2, 3, 4}},
                                                       {{}, {2, 3}},     {{2, 3}, {}},     {{2, 1, 4}, {3, 1}}};
  for (const auto& [sa, sb] : shapes) {
    SCOPED_TRACE(shape_str(sa) + " with " + shape_str(sb));
    Tensor a = m.randn(sa), b = m.nonzero(sb), pa = m.positive(sa);
    EXPECT_GRADCHECK([](const Inputs& in) { return add(in[0], in[1]); }, (Inputs{a, b}));
    EXPECT_GRADCHECK([](const Inputs& in) { return sub(in[0], in[1]); }, (Inputs{a, b}));
    EXPECT_GRADCHECK([](const Inputs& in) { return mul(in[0], in[1]); }, (Inputs{a, b}));
    EXPECT_GRADCHECK([](const Inputs& in) { return div(in[0], in[1]); }, (Inputs{a, b}));
    EXPECT_GRADCHECK([](const Inputs& in) { return pow(in[0], in[1]); }, (Inputs{pa, b}));
    EXPECT_GRADCHECK([](const Inputs& in) { return maximum(in[0], in[1]); }, (Inputs{a, b}));
  }
}

TEST(Gradcheck, BinaryOpsWithOneConstantSide) {
  Maker m(12);
  Tensor a = m.randn({3, 4}), c = m.constant({4}), cnz = ops::affine(ops::unary(ops::UnaryOp::Abs, c), 1, 0.5);
  Tensor pa = m.positive({3, 4});
  EXPECT_GRADCHECK([&](const Inputs& in) { return add(c, in[0]); }, (Inputs{a}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return sub(c, in[0]); }, (Inputs{a}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return sub(in[0], c); }, (Inputs{a}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return mul(c, in[0]); }, (Inputs{a}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return div(in[0], cnz); }, (Inputs{a}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return div(c, in[0]); }, (Inputs{pa}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return pow(in[0], c); }, (Inputs{pa}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return pow(cnz, in[0]); }, (Inputs{a}));
}

TEST(Gradcheck, UnaryOps) {
  Maker m(13);
  Tensor x = m.randn({3, 5}), p = m.positive({3, 5}), nz = m.nonzero({3, 5});
  EXPECT_GRADCHECK([](const Inputs& in) { return neg(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return exp(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return log(in[0]); }, (Inputs{p}));
  EXPECT_GRADCHECK([](const Inputs& in) { return sqrt(in[0]); }, (Inputs{p}));
  EXPECT_GRADCHECK([](const Inputs& in) { return abs(in[0]); }, (Inputs{nz}));
  EXPECT_GRADCHECK([](const Inputs& in) { return relu(in[0]); }, (Inputs{nz}));
  EXPECT_GRADCHECK([](const Inputs& in) { return gelu(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return gelu(in[0], "none"); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return gelu(in[0], "tanh"); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return braid::tanh(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return sigmoid(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return affine(in[0], -2.5, 0.75); }, (Inputs{x}));
  Tensor c = m.away_from({4, 6}, {-0.5, 0.8}, 0.05);
  EXPECT_GRADCHECK([](const Inputs& in) { return clamp(in[0], -0.5, 0.8); }, (Inputs{c}));
  for (double e : {2.0, 3.0, 0.5, -1.5, 1.0}) {
    SCOPED_TRACE("exponent " + std::to_string(e));
    EXPECT_GRADCHECK([e](const Inputs& in) { return pow(in[0], e); }, (Inputs{p}));
  }
  EXPECT_GRADCHECK([](const Inputs& in) { return pow(in[0], 2.0); }, (Inputs{x}));
  // Non-contiguous inputs to the element-wise ops.
  EXPECT_GRADCHECK([](const Inputs& in) { return exp(transpose(in[0], 0, 1)); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return mul(transpose(in[0], 0, 1), in[1]); }, (Inputs{x, m.randn({5, 3})}));
}

// The tanh approximation over the range where its cubic term and its saturation matter, beside the exact form.
TEST(Gradcheck, GeluBothFormsOverAWideRange) {
  Maker m(14);
  Tensor x = m.uniform({4, 8}, -6, 6);
  for (const char* approximate : {"none", "tanh"}) {
    SCOPED_TRACE(approximate);
    EXPECT_GRADCHECK([=](const Inputs& in) { return gelu(in[0], approximate); }, (Inputs{x}));
  }
}

TEST(Gradcheck, Operators) {
  Maker m(14);
  Tensor a = m.randn({2, 3}), b = m.nonzero({2, 3}), nz = m.nonzero({2, 3});
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] + in[1]; }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] - in[1]; }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] * in[1]; }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] / in[1]; }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return -in[0]; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] + 2.0; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return 2.0 + in[0]; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] - 2.0; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return 2.0 - in[0]; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] * 3.0; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return 3.0 * in[0]; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return in[0] / 4.0; }, (Inputs{a}));
  EXPECT_GRADCHECK([](const Inputs& in) { return 4.0 / in[0]; }, (Inputs{nz}));
  EXPECT_GRADCHECK([](const Inputs& in) { return (in[0] * in[1] - 1.5) / (2.0 + in[0] * in[0]); }, (Inputs{a, b}));
}

// ---- reductions ----

TEST(Gradcheck, Reductions) {
  Maker m(20);
  Tensor x = m.randn({3, 4, 5});
  const std::vector<std::vector<int64_t>> dim_sets = {{}, {1}, {-1}, {0, 2}, {2, 0}, {0, 1, 2}};
  for (const auto& dims : dim_sets)
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE("dims " + shape_str(dims) + (keepdim ? " keepdim" : ""));
      EXPECT_GRADCHECK([=](const Inputs& in) { return sum(in[0], dims, keepdim); }, (Inputs{x}));
      EXPECT_GRADCHECK([=](const Inputs& in) { return mean(in[0], dims, keepdim); }, (Inputs{x}));
      EXPECT_GRADCHECK([=](const Inputs& in) { return amax(in[0], dims, keepdim); }, (Inputs{x}));
      EXPECT_GRADCHECK([=](const Inputs& in) { return amin(in[0], dims, keepdim); }, (Inputs{x}));
      if (!dims.empty()) EXPECT_GRADCHECK([=](const Inputs& in) { return var(in[0], dims, keepdim); }, (Inputs{x}));
    }
  EXPECT_GRADCHECK([](const Inputs& in) { return max(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return min(in[0]); }, (Inputs{x}));
  // Reductions of non-contiguous views.
  EXPECT_GRADCHECK([](const Inputs& in) { return sum(transpose(in[0], 0, 2), {0, 2}, true); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return amax(permute(in[0], {1, 2, 0}), {1}); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return mean(in[0] * in[0], {1}); }, (Inputs{x}));
}

TEST(Gradcheck, AmaxSplitsTiedGradientEvenly) {
  // Not differentiable at ties, so checked against PyTorch's convention instead of finite differences.
  Tensor x = from_vector(std::vector<double>{1, 3, 3, 0, 2, 5}, {2, 3}).requires_grad_(true);
  amax(x, {1}).backward(from_vector(std::vector<double>{1, 10}));
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{0, 0.5, 0.5, 0, 0, 10}));
  Tensor y = from_vector(std::vector<double>{2, 2, 2, 7}).requires_grad_(true);
  amin(y).backward();
  // Element by element: GCC 12.2 with -march=native (AVX-512) miscompiles the braced list {c, c, c, 0} into
  // {c, c, c, c}.
  std::vector<double> gy = y.grad().to_vector<double>();
  ASSERT_EQ(gy.size(), 4u);
  for (int i = 0; i < 3; ++i) EXPECT_DOUBLE_EQ(gy[i], 1.0 / 3);
  EXPECT_EQ(gy[3], 0.0);
}

// ---- shape ops ----

TEST(Gradcheck, ViewsAndReshapes) {
  Maker m(30);
  Tensor x = m.randn({2, 3, 4});
  EXPECT_GRADCHECK([](const Inputs& in) { return reshape(in[0], {4, -1}); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return reshape(transpose(in[0], 0, 2), {-1}); }, (Inputs{x}));  // copies
  EXPECT_GRADCHECK([](const Inputs& in) { return view(in[0], {6, 4}); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return transpose(in[0], 0, 2); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return transpose(in[0], -1, 1); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return t(reshape(in[0], {6, 4})); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return permute(in[0], {2, 0, 1}); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return permute(in[0], {-1, 0, 1}); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return narrow(in[0], 2, 1, 2); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return narrow(in[0], 1, -2, 2); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return slice(in[0], 2, 1, 3); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return slice(in[0], -1, -3, -1); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return select(in[0], 1, 2); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return select(in[0], -1, -1); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return flatten(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return flatten(in[0], 1); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return flatten(transpose(in[0], 0, 1), 0, 1); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return contiguous(transpose(in[0], 1, 2)); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return contiguous(in[0]) * 2.0; }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return clone(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return clone(transpose(in[0], 0, 1)); }, (Inputs{x}));
  // Views of views, and a view used twice.
  EXPECT_GRADCHECK([](const Inputs& in) { return select(narrow(transpose(in[0], 0, 1), 0, 1, 2), 2, 3); }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return mul(select(in[0], 0, 0), select(in[0], 0, 1)); }, (Inputs{x}));
}

TEST(Gradcheck, ExpandSqueezeUnsqueeze) {
  Maker m(31);
  Tensor c = m.randn({3, 1}), v = m.randn({4});
  EXPECT_GRADCHECK([](const Inputs& in) { return expand(in[0], {2, 3, 4}); }, (Inputs{c}));
  EXPECT_GRADCHECK([](const Inputs& in) { return expand(in[0], {3, -1}); }, (Inputs{c}));
  EXPECT_GRADCHECK(
      [](const Inputs& in) {
        return expand(in[0], {2, 3, 4}) * expand(in[1], {2, 3, 4});
      },
      (Inputs{c, v}));
  EXPECT_GRADCHECK([](const Inputs& in) { return squeeze(in[0], 1); }, (Inputs{c}));
  EXPECT_GRADCHECK([](const Inputs& in) { return squeeze(in[0], -1); }, (Inputs{c}));
  EXPECT_GRADCHECK([](const Inputs& in) { return squeeze(in[0], 0) * 2.0; }, (Inputs{c}));  // a no-op squeeze
  EXPECT_GRADCHECK([](const Inputs& in) { return unsqueeze(in[0], 0); }, (Inputs{v}));
  EXPECT_GRADCHECK([](const Inputs& in) { return unsqueeze(in[0], -1); }, (Inputs{v}));
  EXPECT_GRADCHECK([](const Inputs& in) { return unsqueeze(in[0], 1) * unsqueeze(in[0], 0); }, (Inputs{v}));
}

TEST(Gradcheck, CatStackIndexSelect) {
  Maker m(32);
  Tensor a = m.randn({2, 3}), b = m.randn({1, 3}), c = m.randn({2, 2}), d = m.randn({2, 3});
  EXPECT_GRADCHECK([](const Inputs& in) { return cat({in[0], in[1]}, 0); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return cat({in[0], in[1], in[0]}, 0); }, (Inputs{a, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return cat({in[0], in[1]}, -1); }, (Inputs{a, c}));
  EXPECT_GRADCHECK(
      [](const Inputs& in) {
        return cat({transpose(in[0], 0, 1), in[1]}, 1);
      },
      (Inputs{a, m.randn({3, 4})}));
  EXPECT_GRADCHECK([](const Inputs& in) { return stack({in[0], in[1]}, 0); }, (Inputs{a, d}));
  EXPECT_GRADCHECK([](const Inputs& in) { return stack({in[0], in[1]}, 1); }, (Inputs{a, d}));
  EXPECT_GRADCHECK([](const Inputs& in) { return stack({in[0], in[1], in[0]}, -1); }, (Inputs{a, d}));
  // A constant among the inputs.
  Tensor k = m.constant({2, 3});
  EXPECT_GRADCHECK([&](const Inputs& in) { return cat({k, in[0]}, 1); }, (Inputs{a}));

  Tensor t = m.randn({5, 3});
  Tensor rep = index_tensor({4, 0, 4, 2, 4});
  EXPECT_GRADCHECK([&](const Inputs& in) { return index_select(in[0], 0, rep); }, (Inputs{t}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return index_select(in[0], 1, index_tensor({2, 2, 0})); }, (Inputs{t}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return index_select(in[0], -1, index_tensor({1})); }, (Inputs{t}));
  EXPECT_GRADCHECK(
      [&](const Inputs& in) {
        return index_select(in[0], 0, index_tensor({1, 3, 1, 1}, {2, 2}));
      },
      (Inputs{t}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return index_select(transpose(in[0], 0, 1), 1, rep); }, (Inputs{t}));
}

// ---- linear algebra ----

TEST(Gradcheck, Matmul) {
  Maker m(40);
  auto check = [&](const Shape& sa, const Shape& sb) {
    SCOPED_TRACE(shape_str(sa) + " @ " + shape_str(sb));
    Tensor a = m.randn(sa), b = m.randn(sb);
    EXPECT_GRADCHECK([](const Inputs& in) { return matmul(in[0], in[1]); }, (Inputs{a, b}));
  };
  check({3, 4}, {4, 2});
  check({1, 4}, {4, 1});
  check({4}, {4, 3});
  check({3, 4}, {4});
  check({4}, {4});
  check({2, 3, 4}, {2, 4, 5});
  check({1, 3, 4}, {2, 4, 5});
  check({2, 3, 4}, {1, 4, 5});
  check({3, 4}, {2, 4, 5});
  check({2, 3, 4}, {4, 5});
  check({2, 2, 3, 4}, {4, 2});
  check({2, 3, 4}, {4});
  check({2, 2, 3, 4}, {4});
  check({4}, {2, 4, 3});
  // Transposed operands (the backward sees strided views).
  Tensor a = m.randn({4, 3}), b = m.randn({2, 4});
  EXPECT_GRADCHECK([](const Inputs& in) { return matmul(t(in[0]), t(in[1])); }, (Inputs{a, b}));
  Tensor a3 = m.randn({2, 4, 3}), b3 = m.randn({2, 5, 4});
  EXPECT_GRADCHECK([](const Inputs& in) { return matmul(transpose(in[0], 1, 2), transpose(in[1], 1, 2)); },
                   (Inputs{a3, b3}));
  // A transposed (non-contiguous) incoming gradient.
  EXPECT_GRADCHECK([](const Inputs& in) { return t(matmul(in[0], in[1])); },
                   (Inputs{m.randn({3, 4}), m.randn({4, 2})}));
  EXPECT_GRADCHECK([](const Inputs& in) { return transpose(matmul(in[0], in[1]), 0, 2); },
                   (Inputs{m.randn({2, 3, 4}), m.randn({4, 2})}));
  // One side constant.
  Tensor w = m.constant({3, 2});
  EXPECT_GRADCHECK([&](const Inputs& in) { return matmul(in[0], w); }, (Inputs{m.randn({2, 4, 3})}));
  Tensor lhs = m.constant({2, 4, 3});
  EXPECT_GRADCHECK([&](const Inputs& in) { return matmul(lhs, in[0]); }, (Inputs{m.randn({3, 2})}));
}

TEST(Gradcheck, Linear) {
  Maker m(41);
  Tensor x = m.randn({5, 4}), w = m.randn({3, 4}), b = m.randn({3}), x3 = m.randn({2, 3, 4});
  EXPECT_GRADCHECK([](const Inputs& in) { return linear(in[0], in[1], in[2]); }, (Inputs{x, w, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return linear(in[0], in[1]); }, (Inputs{x, w}));
  EXPECT_GRADCHECK([](const Inputs& in) { return linear(in[0], in[1], in[2]); }, (Inputs{x3, w, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return linear(in[0], in[1], in[2]); }, (Inputs{m.randn({4}), w, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return linear(transpose(in[0], 0, 1), in[1], in[2]); },
                   (Inputs{m.randn({4, 5}), w, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return t(linear(in[0], in[1], in[2])); }, (Inputs{x, w, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return transpose(linear(in[0], in[1], in[2]), 0, 2); }, (Inputs{x3, w, b}));
  // Only the weight requires grad (a frozen input), and only the input (frozen weights).
  Tensor cx = m.constant({5, 4}), cw = m.constant({3, 4});
  EXPECT_GRADCHECK([&](const Inputs& in) { return linear(cx, in[0], in[1]); }, (Inputs{w, b}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return linear(in[0], cw); }, (Inputs{x}));
}

// ---- softmax ----

TEST(Gradcheck, SoftmaxAndLogSoftmax) {
  Maker m(50);
  Tensor x = m.randn({3, 5}), x3 = m.randn({2, 3, 4});
  for (int64_t dim : {0, 1, -1}) {
    SCOPED_TRACE("dim " + std::to_string(dim));
    EXPECT_GRADCHECK([=](const Inputs& in) { return softmax(in[0], dim); }, (Inputs{x}));
    EXPECT_GRADCHECK([=](const Inputs& in) { return log_softmax(in[0], dim); }, (Inputs{x}));
  }
  EXPECT_GRADCHECK([](const Inputs& in) { return softmax(in[0], 1); }, (Inputs{x3}));
  EXPECT_GRADCHECK([](const Inputs& in) { return log_softmax(in[0], 1); }, (Inputs{x3}));
  EXPECT_GRADCHECK([](const Inputs& in) { return log_softmax(transpose(in[0], 0, 1), 1); }, (Inputs{x}));
}

// ---- losses ----

TEST(Gradcheck, MseLoss) {
  Maker m(60);
  Tensor x = m.randn({4, 3}), y = m.randn({4, 3});
  for (auto r : {F::Reduction::Mean, F::Reduction::Sum, F::Reduction::None}) {
    SCOPED_TRACE(int(r));
    EXPECT_GRADCHECK([=](const Inputs& in) { return F::mse_loss(in[0], in[1], r); }, (Inputs{x, y}));
  }
  nn::MSELoss loss;
  EXPECT_GRADCHECK([&](const Inputs& in) { return loss(in[0], in[1]); }, (Inputs{x, y}));
}

TEST(Gradcheck, CrossEntropyAndNllLoss) {
  Maker m(61);
  Tensor logits = m.randn({5, 4});
  Tensor target = index_tensor({3, 0, 3, 1, 2});
  for (auto r : {F::Reduction::Mean, F::Reduction::Sum, F::Reduction::None}) {
    SCOPED_TRACE(int(r));
    EXPECT_GRADCHECK([=](const Inputs& in) { return F::cross_entropy(in[0], target, r); }, (Inputs{logits}));
    EXPECT_GRADCHECK([=](const Inputs& in) { return F::nll_loss(log_softmax(in[0], 1), target, r); }, (Inputs{logits}));
    // nll_loss straight on the input (not necessarily log-probabilities).
    EXPECT_GRADCHECK([=](const Inputs& in) { return F::nll_loss(in[0], target, r); }, (Inputs{logits}));
  }
  // One sample, and logits that are themselves computed.
  EXPECT_GRADCHECK([](const Inputs& in) { return F::cross_entropy(in[0], index_tensor({2})); },
                   (Inputs{m.randn({1, 3})}));
  Tensor w = m.randn({4, 6}), x = m.randn({5, 6});
  EXPECT_GRADCHECK([=](const Inputs& in) { return F::cross_entropy(matmul(in[1], t(in[0])), target); }, (Inputs{w, x}));
  nn::CrossEntropyLoss ce;
  nn::NLLLoss nll(F::Reduction::Sum);
  EXPECT_GRADCHECK([&](const Inputs& in) { return ce(in[0], target); }, (Inputs{logits}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return nll(log_softmax(in[0], 1), target); }, (Inputs{logits}));
}

// ---- layers ----

TEST(Gradcheck, LinearLayer) {
  manual_seed(70);
  Maker m(70);
  nn::Linear fc(4, 3, true, DType::Float64);
  Tensor x = m.randn({5, 4});
  EXPECT_GRADCHECK([&](const Inputs& in) { return fc(in[0]); }, (Inputs{x, fc->weight, fc->bias}));
  nn::Linear nobias(4, 2, false, DType::Float64);
  EXPECT_FALSE(nobias->bias.defined());
  EXPECT_GRADCHECK([&](const Inputs& in) { return nobias(in[0]); }, (Inputs{m.randn({2, 3, 4}), nobias->weight}));
  // Converted from float32 after construction.
  nn::Linear conv(3, 2);
  conv->to(DType::Float64);
  ASSERT_EQ(conv->weight.dtype(), DType::Float64);
  EXPECT_GRADCHECK([&](const Inputs& in) { return conv(in[0]); }, (Inputs{m.randn({4, 3}), conv->weight, conv->bias}));
}

TEST(Gradcheck, LayerNorm) {
  Maker m(71);
  nn::LayerNorm ln(Shape{4}, 1e-5, true, DType::Float64);
  {  // non-trivial affine parameters
    NoGradGuard g;
    ops::copy_(ln->weight, braid::randn({4}, DType::Float64, &m.g));
    ops::copy_(ln->bias, braid::randn({4}, DType::Float64, &m.g));
  }
  Tensor x = m.randn({3, 4});
  EXPECT_GRADCHECK([&](const Inputs& in) { return ln(in[0]); }, (Inputs{x, ln->weight, ln->bias}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return ln(in[0]); }, (Inputs{m.randn({2, 3, 4}), ln->weight, ln->bias}));
  // Over the last two dims, with and without affine parameters.
  Tensor w = m.randn({3, 4}), b = m.randn({3, 4}), x3 = m.randn({2, 3, 4});
  EXPECT_GRADCHECK([](const Inputs& in) { return F::layer_norm(in[0], {3, 4}, in[1], in[2]); }, (Inputs{x3, w, b}));
  EXPECT_GRADCHECK([](const Inputs& in) { return F::layer_norm(in[0], {4}, Tensor(), Tensor(), 1e-3); }, (Inputs{x3}));
  nn::LayerNorm plain(Shape{2, 4}, 1e-5, false, DType::Float64);
  EXPECT_TRUE(plain->parameters().empty());
  EXPECT_GRADCHECK([&](const Inputs& in) { return plain(in[0]); }, (Inputs{m.randn({3, 2, 4})}));
  // A float32 layer converted to float64.
  nn::LayerNorm conv(5);
  conv->to(DType::Float64);
  EXPECT_GRADCHECK([&](const Inputs& in) { return conv(in[0]); }, (Inputs{m.randn({2, 5}), conv->weight, conv->bias}));
}

TEST(Gradcheck, EmbeddingWithRepeatedIndices) {
  manual_seed(72);
  nn::Embedding emb(6, 3, DType::Float64);
  Tensor idx = index_tensor({1, 4, 1, 1, 5, 4}, {2, 3});
  EXPECT_GRADCHECK([&](const Inputs&) { return emb(idx); }, (Inputs{emb->weight}));
  EXPECT_GRADCHECK(
      [&](const Inputs&) {
        return F::embedding(index_tensor({0, 0, 0}), emb->weight);
      },
      (Inputs{emb->weight}));
  // The gradient of a repeated row is the sum over its occurrences; unused rows get zero.
  emb->weight.set_grad(Tensor());
  emb(idx).backward(ones({2, 3, 3}, DType::Float64));
  std::vector<double> g = emb->weight.grad().to_vector<double>();
  const double count[6] = {0, 3, 0, 0, 2, 1};
  for (int r = 0; r < 6; ++r)
    for (int c = 0; c < 3; ++c) EXPECT_EQ(g[r * 3 + c], count[r]) << "row " << r;
}

TEST(Gradcheck, ActivationLayers) {
  Maker m(73);
  Tensor x = m.nonzero({3, 4});  // clear of ReLU's kink at 0
  nn::ReLU relu_layer;
  nn::GELU gelu_layer;
  nn::Tanh tanh_layer;
  nn::Sigmoid sigmoid_layer;
  EXPECT_GRADCHECK([&](const Inputs& in) { return relu_layer(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return gelu_layer(in[0]); }, (Inputs{x}));
  nn::GELU gelu_tanh_layer({.approximate = "tanh"});
  EXPECT_GRADCHECK([&](const Inputs& in) { return gelu_tanh_layer(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return tanh_layer(in[0]); }, (Inputs{x}));
  EXPECT_GRADCHECK([&](const Inputs& in) { return sigmoid_layer(in[0]); }, (Inputs{x}));
}

TEST(Gradcheck, Dropout) {
  Maker m(74);
  Tensor x = m.randn({6, 5});
  Generator gen;
  // The same mask for every evaluation: reseed before each.
  Fn f = [&](const Inputs& in) {
    gen.seed(99);
    return F::dropout(in[0], 0.4, true, &gen);
  };
  {  // the mask is not trivial
    NoGradGuard g;
    std::vector<double> y = f({x}).to_vector<double>(), xv = x.to_vector<double>();
    int zeros_count = 0;
    for (size_t i = 0; i < y.size(); ++i) {
      if (y[i] == 0)
        ++zeros_count;
      else
        EXPECT_NEAR(y[i], xv[i] / 0.6, 1e-12);
    }
    EXPECT_GT(zeros_count, 0);
    EXPECT_LT(zeros_count, 30);
  }
  EXPECT_GRADCHECK(f, (Inputs{x}));
  // The Dropout layer draws from the default generator.
  nn::Dropout drop(0.3);
  EXPECT_GRADCHECK(
      [&](const Inputs& in) {
        manual_seed(5);
        return drop(in[0]);
      },
      (Inputs{x}));
  drop->eval();
  EXPECT_GRADCHECK([&](const Inputs& in) { return drop(in[0]) * 1.0; }, (Inputs{x}));
  EXPECT_GRADCHECK([](const Inputs& in) { return F::dropout(in[0], 1.0, true); }, (Inputs{x}));
}

TEST(Gradcheck, SequentialModel) {
  manual_seed(75);
  Maker m(75);
  nn::Sequential model(nn::Linear(4, 6), nn::Tanh(), nn::Linear(6, 5), nn::GELU(), nn::LayerNorm(5), nn::Linear(5, 3),
                       nn::Sigmoid());
  model->to(DType::Float64);
  Inputs inputs{m.randn({3, 4})};
  for (const Tensor& p : model->parameters()) {
    ASSERT_EQ(p.dtype(), DType::Float64);
    inputs.push_back(p);
  }
  ASSERT_EQ(inputs.size(), 1u + 8u);
  EXPECT_GRADCHECK([&](const Inputs& in) { return model(in[0]); }, inputs);
  // Trained end to end with a loss on top.
  Tensor target = index_tensor({0, 2, 1});
  EXPECT_GRADCHECK([&](const Inputs& in) { return F::cross_entropy(model(in[0]), target); }, inputs);
  Tensor y = braid::randn({3, 3}, DType::Float64, &m.g);
  EXPECT_GRADCHECK([&](const Inputs& in) { return F::mse_loss(model(in[0]), y); }, inputs);
}
