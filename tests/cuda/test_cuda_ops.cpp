// core/ ops on a CUDA device against their CPU twins: every op runs on the same random inputs (awkward sizes,
// broadcasts, strided views) on both devices and the results must agree element by element. Float32 element-wise
// math may differ by a few ulps (CUDA's libm, FMA contraction); sums, softmax and GEMM by their accumulation order;
// float64 nearly not at all. Every CUDA allocation is poisoned (NaN for floats, -1 for int64), so an output
// element a kernel leaves unwritten fails the comparison. Every test skips when no CUDA device is visible.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <iomanip>
#include <sstream>
#include <string>
#include <vector>

#include "../test_util.h"
#include "cuda_test_util.h"
#include "braid/core/core.h"
#include "braid/nn/functional.h"

using namespace braid;
using braid::test::error_of;
using ops::ActivationBackward;
using ops::BinaryOp;
using ops::UnaryOp;

namespace {

using braid::test::kGpu;

class CudaOps : public braid::test::CudaTest {};

// The sizes every element-wise op is tried on: one element, a partial warp, not a multiple of any block size,
// one past a power of two, and 2-D / 3-D shapes whose rows are not multiples of 32.
const std::vector<Shape> kShapes = {{1}, {7}, {1000}, {4097}, {33, 65}, {3, 17, 129}};
const std::vector<DType> kFloatTypes = {DType::Float32, DType::Float64};

struct Tol {
  double rtol, atol;
};
constexpr Tol kExact{0, 0};
// Element-wise math: float32 within a few ulps, float64 to rounding.
constexpr Tol kElementwise32{1e-5, 1e-6};
constexpr Tol kElementwise64{1e-12, 1e-14};
Tol elementwise_tol(DType t) { return t == DType::Float64 ? kElementwise64 : kElementwise32; }

Tensor to_gpu(const Tensor& t) { return ops::to_device(t, kGpu); }
Tensor to_cpu(const Tensor& t) { return ops::to_device(t, Device::cpu()); }

Tensor randn_cpu(const Shape& s, DType t, uint64_t seed, double std = 1) {
  Generator g(seed);
  return normal(s, 0, std, t, &g);
}

Tensor uniform_cpu(const Shape& s, double lo, double hi, DType t, uint64_t seed) {
  Generator g(seed);
  return uniform(s, lo, hi, t, &g);
}

// Integers uniform in [lo, hi).
Tensor randint_cpu(const Shape& s, int64_t lo, int64_t hi, uint64_t seed) {
  Generator g(seed);
  std::vector<int64_t> v(size_t(shape_numel(s)));
  for (auto& x : v) x = lo + int64_t(g.next() % uint64_t(hi - lo));
  return from_vector(v, s);
}

// Copies every k-th element of `a` into `b` (same shape, CPU), so comparisons and max/min see ties.
Tensor with_ties(const Tensor& a, const Tensor& b, int64_t k = 5) {
  std::vector<double> va = a.to_vector<double>(), vb = b.to_vector<double>();
  for (size_t i = 0; i < vb.size(); i += size_t(k)) vb[i] = va[i];
  return ops::to_dtype(from_vector(vb, b.shape()), b.dtype());
}

Tensor abs_cpu(const Tensor& t) { return ops::unary(UnaryOp::Abs, t); }

std::string describe(const Tensor& t) {
  std::ostringstream os;
  os << shape_str(t.shape()) << " " << t.dtype() << " on " << t.device();
  return os.str();
}

// `got` (computed on `where`) against the CPU reference `want`: same shape and dtype, and per element
// |got - want| <= atol + rtol * |scale| where scale is `want` unless given (GEMM and sums pass the magnitude of
// what was accumulated, so cancellation does not demand impossible precision). A NaN in `got` where `want` is a
// number fails: that is what an unwritten (poisoned) element looks like. Int64 must match exactly.
::testing::AssertionResult matches(const Tensor& got, const Tensor& want, Tol tol, const Tensor& scale = Tensor(),
                                   Device where = kGpu) {
  if (!got.defined()) return ::testing::AssertionFailure() << "result is undefined";
  if (got.device() != where)
    return ::testing::AssertionFailure() << "result is on " << got.device() << ", expected " << where;
  if (got.shape() != want.shape() || got.dtype() != want.dtype())
    return ::testing::AssertionFailure() << "result is " << describe(got) << ", expected " << describe(want);
  if (got.dtype() == DType::Int64) {
    auto g = got.to_vector<int64_t>(), w = want.to_vector<int64_t>();
    for (size_t i = 0; i < g.size(); ++i)
      if (g[i] != w[i])
        return ::testing::AssertionFailure()
               << describe(got) << ": element " << i << " is " << g[i] << ", expected " << w[i];
    return ::testing::AssertionSuccess();
  }
  auto g = got.to_vector<double>(), w = want.to_vector<double>();
  auto s = scale.defined() ? scale.to_vector<double>() : w;
  if (s.size() != w.size()) return ::testing::AssertionFailure() << "scale has the wrong number of elements";
  int64_t bad = 0, first = -1;
  for (size_t i = 0; i < g.size(); ++i) {
    bool ok;
    if (std::isnan(w[i]))
      ok = std::isnan(g[i]);
    else if (std::isinf(w[i]))
      ok = g[i] == w[i];
    else
      ok = std::abs(g[i] - w[i]) <= tol.atol + tol.rtol * std::abs(s[i]);  // false for a NaN g[i]
    if (!ok && bad++ == 0) first = int64_t(i);
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << std::setprecision(17) << describe(got) << ": " << bad << " of " << g.size()
                                       << " elements differ (rtol " << tol.rtol << ", atol " << tol.atol
                                       << "); first at flat index " << first << ": got " << g[size_t(first)]
                                       << ", expected " << w[size_t(first)];
}

::testing::AssertionResult matches_on_cpu(const Tensor& got, const Tensor& want, Tol tol = kExact) {
  return matches(got, want, tol, Tensor(), Device::cpu());
}

// ---- element-wise ----

struct UnaryCase {
  const char* name;
  UnaryOp op;
  double p0, p1;       // Affine (scale, shift), Clamp (lo, hi), PowScalar (exponent)
  bool positive_only;  // inputs in [0.1, 4) instead of N(0, 1)
};

Tensor apply_unary(const UnaryCase& c, const Tensor& x) {
  switch (c.op) {
    case UnaryOp::Affine:
      return ops::affine(x, c.p0, c.p1);
    case UnaryOp::Clamp:
      return ops::clamp(x, c.p0, c.p1);
    case UnaryOp::PowScalar:
      return ops::pow_scalar(x, c.p0);
    default:
      return ops::unary(c.op, x);
  }
}

const std::vector<UnaryCase> kUnaryCases = {
    {"neg", UnaryOp::Neg, 0, 0, false},
    {"exp", UnaryOp::Exp, 0, 0, false},
    {"log", UnaryOp::Log, 0, 0, true},
    {"sqrt", UnaryOp::Sqrt, 0, 0, true},
    {"abs", UnaryOp::Abs, 0, 0, false},
    {"sign", UnaryOp::Sign, 0, 0, false},
    {"relu", UnaryOp::Relu, 0, 0, false},
    {"gelu", UnaryOp::Gelu, 0, 0, false},
    {"gelu_tanh", UnaryOp::GeluTanh, 0, 0, false},
    {"tanh", UnaryOp::Tanh, 0, 0, false},
    {"sigmoid", UnaryOp::Sigmoid, 0, 0, false},
    {"affine", UnaryOp::Affine, 1.5, -0.25, false},
    {"clamp", UnaryOp::Clamp, -0.5, 0.75, false},
    {"pow 2", UnaryOp::PowScalar, 2, 0, false},
    {"pow 2.5", UnaryOp::PowScalar, 2.5, 0, true},
    {"pow -0.5", UnaryOp::PowScalar, -0.5, 0, true},
};

TEST_F(CudaOps, EveryUnaryOpMatchesCpu) {
  uint64_t seed = 100;
  for (DType dt : kFloatTypes)
    for (const auto& c : kUnaryCases)
      for (const Shape& s : kShapes) {
        SCOPED_TRACE(std::string(c.name) + " " + shape_str(s) + " " + std::string(dtype_name(dt)));
        Tensor x = c.positive_only ? uniform_cpu(s, 0.1, 4, dt, ++seed) : randn_cpu(s, dt, ++seed);
        Tensor want = apply_unary(c, x);
        EXPECT_TRUE(matches(apply_unary(c, to_gpu(x)), want, elementwise_tol(dt)));
      }
}

struct BinaryCase {
  const char* name;
  BinaryOp op;
};

const std::vector<BinaryCase> kBinaryCases = {
    {"add", BinaryOp::Add},
    {"sub", BinaryOp::Sub},
    {"mul", BinaryOp::Mul},
    {"div", BinaryOp::Div},
    {"pow", BinaryOp::Pow},
    {"maximum", BinaryOp::Maximum},
    {"minimum", BinaryOp::Minimum},
    {"eq", BinaryOp::Eq},
    {"ne", BinaryOp::Ne},
    {"lt", BinaryOp::Lt},
    {"le", BinaryOp::Le},
    {"gt", BinaryOp::Gt},
    {"ge", BinaryOp::Ge},
    {"add_ alpha", BinaryOp::AddScaled},
    {"relu_backward", BinaryOp::ReluBackward},
    {"gelu_backward", BinaryOp::GeluBackward},
    {"gelu_tanh_backward", BinaryOp::GeluTanhBackward},
    {"tanh_backward", BinaryOp::TanhBackward},
    {"sigmoid_backward", BinaryOp::SigmoidBackward},
    {"clamp_backward", BinaryOp::ClampBackward},
};

// The ops with parameters go through their own entry points (ops::binary passes none).
Tensor apply_binary(BinaryOp op, const Tensor& a, const Tensor& b) {
  switch (op) {
    case BinaryOp::AddScaled: {
      Tensor out = ops::clone(a);
      ops::add_(out, b, -0.375);
      return out;
    }
    case BinaryOp::ReluBackward:
      return ops::activation_backward(ActivationBackward::Relu, a, b);
    case BinaryOp::GeluBackward:
      return ops::activation_backward(ActivationBackward::Gelu, a, b);
    case BinaryOp::GeluTanhBackward:
      return ops::activation_backward(ActivationBackward::GeluTanh, a, b);
    case BinaryOp::TanhBackward:
      return ops::activation_backward(ActivationBackward::Tanh, a, b);
    case BinaryOp::SigmoidBackward:
      return ops::activation_backward(ActivationBackward::Sigmoid, a, b);
    case BinaryOp::ClampBackward:
      return ops::clamp_backward(a, b, -0.5, 0.75);
    default:
      return ops::binary(op, a, b);
  }
}

TEST_F(CudaOps, EveryBinaryOpMatchesCpu) {
  uint64_t seed = 200;
  for (DType dt : kFloatTypes)
    for (const auto& c : kBinaryCases)
      for (const Shape& s : kShapes) {
        SCOPED_TRACE(std::string(c.name) + " " + shape_str(s) + " " + std::string(dtype_name(dt)));
        Tensor a = c.op == BinaryOp::Pow ? uniform_cpu(s, 0.5, 2, dt, ++seed) : randn_cpu(s, dt, ++seed);
        Tensor b = with_ties(a, randn_cpu(s, dt, ++seed));
        Tensor want = apply_binary(c.op, a, b);
        EXPECT_TRUE(matches(apply_binary(c.op, to_gpu(a), to_gpu(b)), want, elementwise_tol(dt)));
      }
}

TEST_F(CudaOps, BinaryOpsBroadcast) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{3, 1}, {1, 4}},        {{2, 3, 4}, {4}},          {{4}, {2, 3, 4}}, {{}, {33, 65}}, {{33, 65}, {}}, {{}, {}},
      {{3, 17, 129}, {17, 1}}, {{3, 1, 129}, {1, 17, 1}}, {{33, 1}, {65}},  {{1}, {4097}},  {{4097}, {1}},
  };
  const BinaryOp kOps[] = {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Maximum, BinaryOp::Gt};
  uint64_t seed = 300;
  for (DType dt : kFloatTypes)
    for (const auto& [sa, sb] : pairs)
      for (BinaryOp op : kOps) {
        SCOPED_TRACE(std::string(kernels::op_name(op)) + " " + shape_str(sa) + " with " + shape_str(sb) + " " +
                     std::string(dtype_name(dt)));
        Tensor a = randn_cpu(sa, dt, ++seed), b = randn_cpu(sb, dt, ++seed);
        Tensor want = ops::binary(op, a, b);
        EXPECT_TRUE(matches(ops::binary(op, to_gpu(a), to_gpu(b)), want, elementwise_tol(dt)));
      }
  // add_ broadcasts its source into the destination.
  Tensor dst = randn_cpu({3, 17, 129}, DType::Float32, ++seed), src = randn_cpu({17, 1}, DType::Float32, ++seed);
  Tensor dst_gpu = to_gpu(dst);
  ops::add_(dst, src, 0.5);
  ops::add_(dst_gpu, to_gpu(src), 0.5);
  EXPECT_TRUE(matches(dst_gpu, dst, kElementwise32));
}

TEST_F(CudaOps, StridedInputs) {
  auto tr = [](const Tensor& t) { return ops::transpose(t, 0, 1); };      // [65, 33] -> [33, 65], strides [1, 33]
  auto nar = [](const Tensor& t) { return ops::narrow(t, 1, 5, 65); };    // [33, 80] -> [33, 65] at offset 5
  auto per = [](const Tensor& t) { return ops::permute(t, {2, 1, 0}); };  // [129, 17, 3] -> [3, 17, 129]
  auto row = [](const Tensor& t) { return ops::expand(ops::narrow(t, 0, 4, 1), {33, 65}); };  // stride-0 rows
  uint64_t seed = 400;
  for (DType dt : kFloatTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tol tol = elementwise_tol(dt);
    Tensor t = randn_cpu({65, 33}, dt, ++seed), n = randn_cpu({33, 80}, dt, ++seed),
           b = randn_cpu({33, 65}, dt, ++seed);
    Tensor p = randn_cpu({129, 17, 3}, dt, ++seed), q = randn_cpu({3, 17, 129}, dt, ++seed);
    Tensor gt = to_gpu(t), gn = to_gpu(n), gb = to_gpu(b), gp = to_gpu(p), gq = to_gpu(q);
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Div, BinaryOp::Minimum, BinaryOp::Le}) {
      SCOPED_TRACE(kernels::op_name(op));
      EXPECT_TRUE(matches(ops::binary(op, tr(gt), gb), ops::binary(op, tr(t), b), tol));
      EXPECT_TRUE(matches(ops::binary(op, gb, tr(gt)), ops::binary(op, b, tr(t)), tol));
      EXPECT_TRUE(matches(ops::binary(op, nar(gn), tr(gt)), ops::binary(op, nar(n), tr(t)), tol));
      EXPECT_TRUE(matches(ops::binary(op, row(gb), nar(gn)), ops::binary(op, row(b), nar(n)), tol));
      EXPECT_TRUE(matches(ops::binary(op, per(gp), gq), ops::binary(op, per(p), q), tol));
    }
    for (UnaryOp op : {UnaryOp::Exp, UnaryOp::Relu, UnaryOp::Neg, UnaryOp::Tanh}) {
      SCOPED_TRACE(kernels::op_name(op));
      EXPECT_TRUE(matches(ops::unary(op, tr(gt)), ops::unary(op, tr(t)), tol));
      EXPECT_TRUE(matches(ops::unary(op, nar(gn)), ops::unary(op, nar(n)), tol));
      EXPECT_TRUE(matches(ops::unary(op, per(gp)), ops::unary(op, per(p)), tol));
    }
    EXPECT_TRUE(matches(ops::activation_backward(ActivationBackward::Gelu, tr(gt), nar(gn)),
                        ops::activation_backward(ActivationBackward::Gelu, tr(t), nar(n)), tol));
    EXPECT_TRUE(
        matches(ops::clamp_backward(nar(gn), tr(gt), -0.5, 0.5), ops::clamp_backward(nar(n), tr(t), -0.5, 0.5), tol));
    // In-place ops on a view write through to the storage it shares.
    Tensor base = randn_cpu({65, 33}, dt, ++seed), gbase = to_gpu(base);
    ops::mul_(tr(gbase), 1.75);
    ops::mul_(tr(base), 1.75);
    ops::add_(tr(gbase), gb, -0.5);
    ops::add_(tr(base), b, -0.5);
    ops::add_(nar(gn), tr(gbase));
    ops::add_(nar(n), tr(base));
    EXPECT_TRUE(matches(gbase, base, tol));
    EXPECT_TRUE(matches(gn, n, tol));
    Tensor scaled = randn_cpu({33, 65}, dt, ++seed), gscaled = to_gpu(scaled);  // affine_ from a strided source
    ops::affine_(gscaled, tr(gbase), -0.25, 2);
    ops::affine_(scaled, tr(base), -0.25, 2);
    EXPECT_TRUE(matches(gscaled, scaled, tol));
  }
}

TEST_F(CudaOps, Int64ArithmeticAndComparisons) {
  uint64_t seed = 500;
  for (const Shape& s : kShapes) {
    SCOPED_TRACE(shape_str(s));
    Tensor a = randint_cpu(s, -50, 50, ++seed);
    Tensor b = with_ties(a, randint_cpu(s, -50, 50, ++seed), 3);
    Tensor ga = to_gpu(a), gb = to_gpu(b);
    for (BinaryOp op : {BinaryOp::Add, BinaryOp::Sub, BinaryOp::Mul, BinaryOp::Maximum, BinaryOp::Minimum, BinaryOp::Eq,
                        BinaryOp::Ne, BinaryOp::Lt, BinaryOp::Le, BinaryOp::Gt, BinaryOp::Ge}) {
      SCOPED_TRACE(kernels::op_name(op));
      EXPECT_TRUE(matches(ops::binary(op, ga, gb), ops::binary(op, a, b), kExact));
    }
    for (UnaryOp op : {UnaryOp::Neg, UnaryOp::Abs, UnaryOp::Sign})
      EXPECT_TRUE(matches(ops::unary(op, ga), ops::unary(op, a), kExact)) << kernels::op_name(op);
    EXPECT_TRUE(matches(ops::affine(ga, 3, -2), ops::affine(a, 3, -2), kExact));
    EXPECT_TRUE(matches(ops::clamp(ga, -10, 10), ops::clamp(a, -10, 10), kExact));
    Tensor seven = scalar_tensor(7, DType::Int64);
    EXPECT_TRUE(matches(ops::binary(BinaryOp::Add, ga, to_gpu(seven)), ops::binary(BinaryOp::Add, a, seven), kExact));
    EXPECT_TRUE(matches(ops::binary(BinaryOp::Lt, to_gpu(seven), ga), ops::binary(BinaryOp::Lt, seven, a), kExact));
  }
  Tensor m = randint_cpu({33, 65}, -9, 9, ++seed), r = randint_cpu({65}, -9, 9, ++seed);
  EXPECT_TRUE(matches(ops::binary(BinaryOp::Add, to_gpu(m), to_gpu(r)), ops::binary(BinaryOp::Add, m, r), kExact));
  EXPECT_TRUE(matches(ops::binary(BinaryOp::Eq, to_gpu(m), to_gpu(r)), ops::binary(BinaryOp::Eq, m, r), kExact));
  // Float-only math refuses int64 on the GPU as it does on the CPU.
  EXPECT_THROW(ops::unary(UnaryOp::Exp, to_gpu(m)), Error);
  EXPECT_THROW(ops::binary(BinaryOp::Pow, to_gpu(m), to_gpu(m)), Error);
}

// ---- copies and conversions ----

TEST_F(CudaOps, CopiesOfTransposedAndExpandedViews) {
  uint64_t seed = 600;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tensor x = dt == DType::Int64 ? randint_cpu({65, 33}, -1000, 1000, ++seed) : randn_cpu({65, 33}, dt, ++seed);
    Tensor gx = to_gpu(x);
    Tensor c = ops::contiguous(ops::transpose(gx, 0, 1));
    EXPECT_TRUE(c.is_contiguous());
    EXPECT_TRUE(matches(c, ops::contiguous(ops::transpose(x, 0, 1)), kExact));
    auto expanded = [](const Tensor& t) {
      return std::vector<Tensor>{ops::expand(ops::narrow(t, 0, 3, 1), {17, 33}),  // a row
                                 ops::expand(ops::narrow(t, 1, 2, 1), {65, 40}),  // a column
                                 ops::expand(ops::unsqueeze(ops::narrow(t, 0, 10, 3), 1), {3, 17, 33}),
                                 ops::expand(ops::select(ops::select(t, 0, 7), 0, 5), {4097})};  // one element
    };
    auto ge = expanded(gx), ce = expanded(x);
    for (size_t i = 0; i < ge.size(); ++i) {
      EXPECT_TRUE(matches(ops::contiguous(ge[i]), ops::contiguous(ce[i]), kExact)) << "expanded view " << i;
      EXPECT_TRUE(matches(ops::clone(ge[i]), ops::clone(ce[i]), kExact)) << "expanded view " << i;
    }
    // copy_ into a transposed destination, then broadcasting a strided column into every row.
    Tensor gd = empty({33, 65}, TensorOptions(dt, kGpu)), cd = zeros({33, 65}, dt);
    ops::copy_(ops::transpose(gd, 0, 1), gx);
    ops::copy_(ops::transpose(cd, 0, 1), x);
    EXPECT_TRUE(matches(gd, cd, kExact));
    ops::copy_(gd, ops::select(gx, 1, 4));
    ops::copy_(cd, ops::select(x, 1, 4));
    EXPECT_TRUE(matches(gd, cd, kExact));
    // copy_ converting the dtype on the device.
    for (DType to : {DType::Float32, DType::Float64, DType::Int64}) {
      Tensor g2 = empty({33, 65}, TensorOptions(to, kGpu)), c2 = zeros({33, 65}, to);
      ops::copy_(g2, ops::transpose(gx, 0, 1));
      ops::copy_(c2, ops::transpose(x, 0, 1));
      EXPECT_TRUE(matches(g2, c2, kExact)) << "to " << to;
    }
  }
}

TEST_F(CudaOps, DtypeConversions) {
  const DType all[] = {DType::Float32, DType::Float64, DType::Int64};
  uint64_t seed = 700;
  for (DType from : all)
    for (DType to : all)
      for (const Shape& s : kShapes) {
        SCOPED_TRACE(std::string(dtype_name(from)) + " -> " + std::string(dtype_name(to)) + " " + shape_str(s));
        // Values with fractions (truncated toward zero into int64) and integers beyond float32's 24-bit mantissa.
        Tensor x = from == DType::Int64 ? randint_cpu(s, -100000000, 100000000, ++seed)
                                        : uniform_cpu(s, -1000, 1000, from, ++seed);
        Tensor gx = to_gpu(x);
        EXPECT_TRUE(matches(ops::to_dtype(gx, to), ops::to_dtype(x, to), kExact));
        if (from == to) {
          EXPECT_TRUE(ops::to_dtype(gx, to).same(gx));
        }
      }
}

TEST_F(CudaOps, HostDeviceRoundTrips) {
  uint64_t seed = 800;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64})
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_str(s));
      Tensor x = dt == DType::Int64 ? randint_cpu(s, INT64_MIN / 2, INT64_MAX / 2, ++seed) : randn_cpu(s, dt, ++seed);
      Tensor g = to_gpu(x);
      EXPECT_EQ(g.device(), kGpu);
      EXPECT_TRUE(matches_on_cpu(to_cpu(g), x));
      EXPECT_TRUE(matches_on_cpu(to_cpu(ops::clone(g)), x));
    }
  // Strided sources in both directions.
  Tensor x = randn_cpu({65, 33}, DType::Float32, ++seed), b = randn_cpu({33, 65}, DType::Float32, ++seed);
  EXPECT_TRUE(matches(to_gpu(ops::transpose(x, 0, 1)), ops::contiguous(ops::transpose(x, 0, 1)), kExact));
  EXPECT_TRUE(matches_on_cpu(to_cpu(ops::transpose(to_gpu(x), 0, 1)), ops::contiguous(ops::transpose(x, 0, 1))));
  EXPECT_TRUE(matches_on_cpu(to_cpu(ops::narrow(to_gpu(b), 1, 3, 50)), ops::contiguous(ops::narrow(b, 1, 3, 50))));
  // copy_ across devices into a strided destination, and with a broadcast plus a conversion.
  Tensor cdst = zeros({65, 33});
  ops::copy_(ops::transpose(cdst, 0, 1), to_gpu(b));
  EXPECT_TRUE(matches_on_cpu(cdst, ops::contiguous(ops::transpose(b, 0, 1))));
  Tensor gdst = empty({33, 65}, TensorOptions(DType::Float64, kGpu));
  Tensor row = randn_cpu({65}, DType::Float32, ++seed);
  ops::copy_(gdst, row);
  EXPECT_TRUE(matches(gdst, ops::contiguous(ops::expand(ops::to_dtype(row, DType::Float64), {33, 65})), kExact));
  Tensor cdst64 = zeros({33, 65}, DType::Float64);
  ops::copy_(cdst64, to_gpu(row));
  EXPECT_TRUE(matches_on_cpu(cdst64, ops::contiguous(ops::expand(ops::to_dtype(row, DType::Float64), {33, 65}))));
  // Factories that take a CUDA device, and reading single values back.
  Tensor v = from_vector(std::vector<float>{1.5f, -2, 3}, {3}, kGpu);
  EXPECT_EQ(v.device(), kGpu);
  EXPECT_EQ(v.to_vector<float>(), (std::vector<float>{1.5f, -2, 3}));
  EXPECT_EQ(ops::select(v, 0, 1).item<float>(), -2.f);
  Tensor r = arange(0, 10, 1, TensorOptions(DType::Int64, kGpu));
  EXPECT_EQ(r.to_vector<int64_t>(), (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}));
  EXPECT_TRUE(matches(zeros({4097}, kGpu), zeros({4097}), kExact));
  EXPECT_TRUE(matches(ones({33, 65}, TensorOptions(DType::Float64, kGpu)), ones({33, 65}, DType::Float64), kExact));
  Generator g1(5), g2(5);
  EXPECT_TRUE(matches(randn({1000}, kGpu, &g1), randn({1000}, DType::Float32, &g2), kExact));
}

TEST_F(CudaOps, FillAddMulInPlace) {
  uint64_t seed = 900;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64})
    for (const Shape& s : kShapes) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + shape_str(s));
      Tensor g = empty(s, TensorOptions(dt, kGpu));
      ops::fill_(g, 3.25);
      EXPECT_TRUE(matches(g, full(s, 3.25, dt), kExact));
    }
  for (DType dt : kFloatTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    const Tol tol = elementwise_tol(dt);
    // A strided fill touches only the view's elements.
    Tensor x = randn_cpu({33, 80}, dt, ++seed), gx = to_gpu(x);
    ops::fill_(ops::narrow(gx, 1, 5, 65), -1.5);
    ops::fill_(ops::narrow(x, 1, 5, 65), -1.5);
    ops::fill_(ops::select(gx, 1, 79), 2);
    ops::fill_(ops::select(x, 1, 79), 2);
    EXPECT_TRUE(matches(gx, x, kExact));
    // add_ (alpha 1, another alpha, a broadcast source) and mul_.
    Tensor d = randn_cpu({33, 65}, dt, ++seed), src = randn_cpu({33, 65}, dt, ++seed), r = randn_cpu({65}, dt, ++seed);
    Tensor gd = to_gpu(d);
    ops::add_(gd, to_gpu(src));
    ops::add_(d, src);
    EXPECT_TRUE(matches(gd, d, tol));
    ops::add_(gd, to_gpu(r), -0.25);
    ops::add_(d, r, -0.25);
    EXPECT_TRUE(matches(gd, d, tol));
    ops::mul_(gd, 1.75);
    ops::mul_(d, 1.75);
    EXPECT_TRUE(matches(gd, d, tol));
  }
  Tensor i = randint_cpu({4097}, -1000, 1000, ++seed), j = randint_cpu({4097}, -1000, 1000, ++seed);
  Tensor gi = to_gpu(i);
  ops::add_(gi, to_gpu(j));
  ops::add_(i, j);
  ops::mul_(gi, 3);
  ops::mul_(i, 3);
  EXPECT_TRUE(matches(gi, i, kExact));
}

// ---- reductions ----

struct ReduceCase {
  Shape shape;
  std::vector<int64_t> dims;  // empty: all
};

const std::vector<ReduceCase> kReduceCases = {
    {{1}, {}},
    {{7}, {}},
    {{1000}, {}},
    {{4097}, {}},
    {{4097}, {0}},
    {{33, 65}, {}},
    {{33, 65}, {0}},
    {{33, 65}, {1}},
    {{33, 65}, {-1}},
    {{33, 65}, {0, 1}},
    {{3, 17, 129}, {}},
    {{3, 17, 129}, {0}},
    {{3, 17, 129}, {1}},
    {{3, 17, 129}, {2}},
    {{3, 17, 129}, {0, 2}},
    {{3, 17, 129}, {1, 2}},
    {{3, 17, 129}, {0, 1}},
    {{3, 17, 129}, {2, 0}},
};

std::string reduce_trace(const ReduceCase& c, bool keepdim) {
  return shape_str(c.shape) + " dims " + shape_str(c.dims) + (keepdim ? " keepdim" : "");
}

TEST_F(CudaOps, SumAndMeanMatchCpu) {
  uint64_t seed = 1000;
  for (const auto& c : kReduceCases)
    for (bool keepdim : {false, true}) {
      SCOPED_TRACE(reduce_trace(c, keepdim));
      // float32 on positive inputs: a dropped or doubled element moves the result by more than 1/4097 of it, far
      // above the 2e-5 allowed for the accumulation order (the CPU sums in double).
      Tensor x = uniform_cpu(c.shape, 0.5, 1.5, DType::Float32, ++seed), gx = to_gpu(x);
      EXPECT_TRUE(matches(ops::sum(gx, c.dims, keepdim), ops::sum(x, c.dims, keepdim), {2e-5, 0}));
      EXPECT_TRUE(matches(ops::mean(gx, c.dims, keepdim), ops::mean(x, c.dims, keepdim), {2e-5, 0}));
      // float64 with mixed signs, against the sum of magnitudes.
      Tensor y = randn_cpu(c.shape, DType::Float64, ++seed), gy = to_gpu(y);
      EXPECT_TRUE(matches(ops::sum(gy, c.dims, keepdim), ops::sum(y, c.dims, keepdim), {1e-12, 0},
                          ops::sum(abs_cpu(y), c.dims, keepdim)));
      EXPECT_TRUE(matches(ops::mean(gy, c.dims, keepdim), ops::mean(y, c.dims, keepdim), {1e-12, 0},
                          ops::mean(abs_cpu(y), c.dims, keepdim)));
      Tensor i = randint_cpu(c.shape, -1000, 1000, ++seed);
      EXPECT_TRUE(matches(ops::sum(to_gpu(i), c.dims, keepdim), ops::sum(i, c.dims, keepdim), kExact));
    }
  // Sums of strided input (made contiguous by the op first).
  Tensor t = randn_cpu({65, 33}, DType::Float64, ++seed);
  Tensor tt = ops::transpose(t, 0, 1), gtt = ops::transpose(to_gpu(t), 0, 1);
  EXPECT_TRUE(matches(ops::sum(gtt, {1}), ops::sum(tt, {1}), {1e-12, 0}, ops::sum(abs_cpu(tt), {1})));
}

TEST_F(CudaOps, MaxMinAndArgMatchCpu) {
  uint64_t seed = 1100;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64})
    for (const auto& c : kReduceCases)
      for (bool keepdim : {false, true}) {
        SCOPED_TRACE(std::string(dtype_name(dt)) + " " + reduce_trace(c, keepdim));
        // int64 in a narrow range has many ties: the index returned must be the first, as on the CPU.
        Tensor x = dt == DType::Int64 ? randint_cpu(c.shape, -100, 100, ++seed) : randn_cpu(c.shape, dt, ++seed);
        Tensor gx = to_gpu(x);
        EXPECT_TRUE(matches(ops::amax(gx, c.dims, keepdim), ops::amax(x, c.dims, keepdim), kExact));
        EXPECT_TRUE(matches(ops::amin(gx, c.dims, keepdim), ops::amin(x, c.dims, keepdim), kExact));
        if (c.dims.size() == 1) {
          EXPECT_TRUE(matches(ops::argmax(gx, c.dims[0], keepdim), ops::argmax(x, c.dims[0], keepdim), kExact));
          EXPECT_TRUE(matches(ops::argmin(gx, c.dims[0], keepdim), ops::argmin(x, c.dims[0], keepdim), kExact));
        }
      }
  // Ties resolve to the first index, also when the tied values sit in different thread blocks.
  Tensor t = to_gpu(from_vector(std::vector<float>{2, 5, 5, 1, 5, -3, -3}));
  EXPECT_EQ(ops::argmax(t, 0).item<int64_t>(), 1);
  EXPECT_EQ(ops::argmin(t, 0).item<int64_t>(), 5);
  EXPECT_EQ(ops::argmax(ones({4097}, kGpu), 0).item<int64_t>(), 0);
  EXPECT_EQ(ops::argmin(ones({100000}, kGpu), 0).item<int64_t>(), 0);
  Tensor m = to_gpu(from_vector(std::vector<double>{1, 1, 3, 3, 0, 2}, {3, 2}));
  EXPECT_EQ(ops::argmax(m, 1).to_vector<int64_t>(), (std::vector<int64_t>{0, 0, 1}));
  EXPECT_EQ(ops::argmax(m, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 1}));
  EXPECT_EQ(ops::argmin(zeros({33, 65}, kGpu), 0).to_vector<int64_t>(), std::vector<int64_t>(65, 0));
}

// ---- softmax and losses ----

TEST_F(CudaOps, SoftmaxAndBackwardMatchCpu) {
  struct Case {
    Shape shape;
    int64_t dim;
  };
  const std::vector<Case> cases = {{{1}, 0},          {{7}, 0},       {{1000}, 0},       {{4097}, -1},
                                   {{33, 65}, 1},     {{33, 65}, 0},  {{3, 17, 129}, 2}, {{3, 17, 129}, 1},
                                   {{3, 17, 129}, 0}, {{5, 4097}, 1}, {{4097, 3}, 0}};
  uint64_t seed = 1200;
  for (DType dt : kFloatTypes)
    for (bool log : {false, true})
      for (double spread : {3.0, 60.0})  // 60: exp overflows float unless the maximum is subtracted first
        for (const auto& c : cases) {
          SCOPED_TRACE(std::string(log ? "log_softmax " : "softmax ") + shape_str(c.shape) + " dim " +
                       std::to_string(c.dim) + " spread " + std::to_string(spread) + " " + std::string(dtype_name(dt)));
          bool f64 = dt == DType::Float64;
          Tol tol = f64 ? Tol{1e-12, 1e-14} : (log ? Tol{1e-5, 1e-5} : Tol{1e-4, 1e-6});
          Tensor x = randn_cpu(c.shape, dt, ++seed, spread);
          Tensor want = ops::softmax(x, c.dim, log), got = ops::softmax(to_gpu(x), c.dim, log);
          EXPECT_TRUE(matches(got, want, tol));
          if (!log) {  // each slice sums to 1: catches a normaliser that misses an element
            Tensor sums = ops::sum(ops::to_dtype(to_cpu(got), DType::Float64), {c.dim});
            EXPECT_TRUE(matches_on_cpu(sums, ones(sums.shape(), DType::Float64), {0, f64 ? 1e-12 : 1e-5}));
          }
          Tensor g = randn_cpu(c.shape, dt, ++seed);
          Tol btol = f64 ? Tol{1e-10, 1e-12} : Tol{1e-4, 1e-5};
          EXPECT_TRUE(matches(ops::softmax_backward(to_gpu(g), to_gpu(want), c.dim, log),
                              ops::softmax_backward(g, want, c.dim, log), btol));
        }
}

const std::vector<std::pair<int64_t, int64_t>> kClassCases = {{1, 1},     {1, 7},    {7, 10},  {33, 65},
                                                              {64, 1000}, {5, 4097}, {1000, 7}};

TEST_F(CudaOps, NllAndBackwardMatchCpu) {
  uint64_t seed = 1300;
  for (DType dt : kFloatTypes)
    for (auto [n, c] : kClassCases) {
      SCOPED_TRACE(std::to_string(n) + " x " + std::to_string(c) + " " + std::string(dtype_name(dt)));
      bool f64 = dt == DType::Float64;
      Tensor lp = ops::softmax(randn_cpu({n, c}, dt, ++seed, 2), 1, true);
      Tensor tg = randint_cpu({n}, 0, c, ++seed);
      Tensor glp = to_gpu(lp), gtg = to_gpu(tg);
      EXPECT_TRUE(matches(ops::nll(glp, gtg), ops::nll(lp, tg), elementwise_tol(dt)));
      for (bool fused : {false, true})
        for (bool per_sample : {false, true}) {
          SCOPED_TRACE(std::string(fused ? "from log_softmax" : "from log-probs") +
                       (per_sample ? ", per-sample gradient" : ", one gradient"));
          Tensor gl = per_sample ? randn_cpu({n}, dt, ++seed) : scalar_tensor(0.7, dt);
          // The gradient is of order scale = 1/n; exp(log p) - 1 near p = 1 cancels to a few ulps of 1 times it.
          double scale = 1.0 / double(n);
          EXPECT_TRUE(matches(ops::nll_backward(glp, gtg, to_gpu(gl), scale, fused),
                              ops::nll_backward(lp, tg, gl, scale, fused),
                              f64 ? Tol{1e-12, 1e-14 * scale} : Tol{1e-5, 1e-6 * scale}));
        }
    }
}

TEST_F(CudaOps, CrossEntropyForwardBackwardMatchCpu) {
  using nn::functional::Reduction;
  uint64_t seed = 1400;
  for (DType dt : kFloatTypes)
    for (auto [n, c] : kClassCases)
      for (Reduction r : {Reduction::Mean, Reduction::Sum, Reduction::None}) {
        SCOPED_TRACE(std::to_string(n) + " x " + std::to_string(c) + " " + std::string(dtype_name(dt)) + " reduction " +
                     std::to_string(int(r)));
        bool f64 = dt == DType::Float64;
        Tensor x = randn_cpu({n, c}, dt, ++seed, 2).requires_grad_();
        Tensor gx = to_gpu(x.detach()).requires_grad_();
        Tensor tg = randint_cpu({n}, 0, c, ++seed);
        Tensor loss = nn::functional::cross_entropy(x, tg, r);
        Tensor gloss = nn::functional::cross_entropy(gx, to_gpu(tg), r);
        EXPECT_TRUE(matches(gloss, loss, f64 ? Tol{1e-12, 1e-14} : Tol{2e-5, 1e-6}));
        if (r == Reduction::None) {
          Tensor gout = randn_cpu({n}, dt, ++seed);
          loss.backward(gout);
          gloss.backward(to_gpu(gout));
        } else {
          loss.backward();
          gloss.backward();
        }
        // Gradients are of order 1/n (mean) or 1; softmax - 1 at the target cancels to a few ulps of 1.
        double g_scale = r == Reduction::Mean ? 1.0 / double(n) : 1.0;
        EXPECT_TRUE(matches(gx.grad(), x.grad(), f64 ? Tol{1e-10, 1e-14 * g_scale} : Tol{1e-4, 2e-6 * g_scale}));
      }
}

TEST_F(CudaOps, InvalidTargetOnGpuThrows) {
  Tensor logits = to_gpu(randn_cpu({4, 5}, DType::Float32, 1500));
  // The smallest bad index is reported, whichever thread finds a bad target first.
  for (const auto& bad : {std::vector<int64_t>{0, 7, 1, -1}, std::vector<int64_t>{0, 1, 2, 5}}) {
    Tensor tg = to_gpu(from_vector(bad));
    std::string msg = error_of([&] { nn::functional::cross_entropy(logits, tg); });
    size_t first = bad[1] == 7 ? 1 : 3;
    EXPECT_CONTAINS(msg, "target[" + std::to_string(first) + "] = " + std::to_string(bad[first]));
    msg = error_of([&] { ops::nll(ops::softmax(logits, 1, true), tg); });
    EXPECT_CONTAINS(msg, "target[" + std::to_string(first) + "]");
  }
  // The device is still usable afterwards (no sticky CUDA error).
  EXPECT_NO_THROW(cuda::synchronize());
  Tensor ok = nn::functional::cross_entropy(logits, to_gpu(from_vector(std::vector<int64_t>{0, 1, 2, 4})));
  EXPECT_TRUE(std::isfinite(ok.item<float>()));
}

// ---- linear algebra ----

// |a| @ |b|: the magnitude a GEMM accumulates, which bounds its rounding error whatever the cancellation.
Tensor gemm_scale(const Tensor& a, const Tensor& b) { return ops::matmul(abs_cpu(a), abs_cpu(b)); }
Tol gemm_tol(DType t) { return t == DType::Float64 ? Tol{1e-12, 1e-14} : Tol{1e-4, 1e-6}; }

// A [rows, cols] operand, stored as such or as the transpose of a [cols, rows] tensor (a BLAS trans flag).
std::pair<Tensor, Tensor> operand(int64_t rows, int64_t cols, bool transposed, DType dt, uint64_t seed) {
  Tensor stored = randn_cpu(transposed ? Shape{cols, rows} : Shape{rows, cols}, dt, seed);
  Tensor gpu = to_gpu(stored);
  if (!transposed) return {stored, gpu};
  return {ops::transpose(stored, 0, 1), ops::transpose(gpu, 0, 1)};
}

TEST_F(CudaOps, Matmul2DEveryTransposeCombination) {
  const std::vector<std::array<int64_t, 3>> sizes = {{1, 1, 1},    {7, 1000, 1},    {1, 4097, 7},
                                                     {33, 65, 17}, {128, 129, 257}, {257, 64, 129}};
  uint64_t seed = 1600;
  for (DType dt : kFloatTypes)
    for (auto [m, k, n] : sizes)
      for (bool ta : {false, true})
        for (bool tb : {false, true}) {
          SCOPED_TRACE(std::to_string(m) + "x" + std::to_string(k) + "x" + std::to_string(n) + (ta ? " A^T" : "") +
                       (tb ? " B^T" : "") + " " + std::string(dtype_name(dt)));
          auto [a, ga] = operand(m, k, ta, dt, ++seed);
          auto [b, gb] = operand(k, n, tb, dt, ++seed);
          EXPECT_TRUE(matches(ops::matmul(ga, gb), ops::matmul(a, b), gemm_tol(dt), gemm_scale(a, b)));
        }
  // Leading dimensions wider than the rows (column slices), and a layout BLAS cannot read (copied first).
  for (DType dt : kFloatTypes) {
    Tensor wa = randn_cpu({33, 80}, dt, ++seed), wb = randn_cpu({65, 40}, dt, ++seed);
    Tensor a = ops::narrow(wa, 1, 5, 65), b = ops::narrow(wb, 1, 3, 17);
    Tensor ga = ops::narrow(to_gpu(wa), 1, 5, 65), gb = ops::narrow(to_gpu(wb), 1, 3, 17);
    EXPECT_TRUE(matches(ops::matmul(ga, gb), ops::matmul(a, b), gemm_tol(dt), gemm_scale(a, b)));
    Tensor at = ops::transpose(ops::narrow(wb, 1, 3, 33), 0, 1);  // [33, 65], column stride 40
    Tensor gat = ops::transpose(ops::narrow(to_gpu(wb), 1, 3, 33), 0, 1);
    EXPECT_TRUE(matches(ops::matmul(gat, gb), ops::matmul(at, b), gemm_tol(dt), gemm_scale(at, b)));
    Tensor row = randn_cpu({1, 65}, dt, ++seed);
    Tensor e = ops::expand(row, {33, 65}), ge = ops::expand(to_gpu(row), {33, 65});
    EXPECT_TRUE(matches(ops::matmul(ge, gb), ops::matmul(e, b), gemm_tol(dt), gemm_scale(e, b)));
  }
}

TEST_F(CudaOps, MatmulBatchedAndNdMatchCpu) {
  const std::vector<std::pair<Shape, Shape>> pairs = {
      {{3, 17, 129}, {3, 129, 33}},
      {{1, 17, 129}, {3, 129, 33}},
      {{3, 17, 129}, {1, 129, 33}},
      {{17, 129}, {3, 129, 33}},
      {{3, 17, 129}, {129, 20}},
      {{2, 3, 5, 129}, {129, 7}},
      {{129}, {129, 7}},
      {{33, 65}, {65}},
      {{65}, {65}},
      {{3, 17, 129}, {129}},
  };
  uint64_t seed = 1700;
  for (DType dt : kFloatTypes) {
    for (const auto& [sa, sb] : pairs) {
      SCOPED_TRACE(shape_str(sa) + " @ " + shape_str(sb) + " " + std::string(dtype_name(dt)));
      Tensor a = randn_cpu(sa, dt, ++seed), b = randn_cpu(sb, dt, ++seed);
      EXPECT_TRUE(matches(ops::matmul(to_gpu(a), to_gpu(b)), ops::matmul(a, b), gemm_tol(dt), gemm_scale(a, b)));
    }
    // Batched with each operand a transposed view of its last two dims.
    Tensor a = randn_cpu({3, 129, 17}, dt, ++seed), b = randn_cpu({3, 33, 129}, dt, ++seed);
    Tensor at = ops::transpose(a, 1, 2), bt = ops::transpose(b, 1, 2);
    Tensor gat = ops::transpose(to_gpu(a), 1, 2), gbt = ops::transpose(to_gpu(b), 1, 2);
    EXPECT_TRUE(matches(ops::matmul(gat, gbt), ops::matmul(at, bt), gemm_tol(dt), gemm_scale(at, bt)));
  }
}

TEST_F(CudaOps, GemmIntoAccumulates) {
  const int64_t m = 33, k = 65, n = 17;
  uint64_t seed = 1800;
  for (DType dt : kFloatTypes)
    for (bool ta : {false, true})
      for (bool tb : {false, true}) {
        SCOPED_TRACE(std::string(ta ? "A^T " : "") + (tb ? "B^T " : "") + std::string(dtype_name(dt)));
        auto [a, ga] = operand(m, k, ta, dt, ++seed);
        auto [b, gb] = operand(k, n, tb, dt, ++seed);
        // Output rows with a leading dimension of 40 inside a wider matrix whose other columns must not change.
        Tensor big = randn_cpu({m, 40}, dt, ++seed), gbig = to_gpu(big);
        Tensor scale = abs_cpu(big);
        ops::copy_(ops::narrow(scale, 1, 3, n), ops::binary(BinaryOp::Add, ops::affine(gemm_scale(a, b), 0.5, 0),
                                                            ops::narrow(abs_cpu(big), 1, 3, n)));
        ops::gemm_into(ops::narrow(big, 1, 3, n), a, b, 0.5, 1);
        ops::gemm_into(ops::narrow(gbig, 1, 3, n), ga, gb, 0.5, 1);
        EXPECT_TRUE(matches(gbig, big, gemm_tol(dt), scale));
        // beta = 0 overwrites (poisoned) memory completely.
        Tensor out = empty({m, n}, TensorOptions(dt, kGpu));
        ops::gemm_into(out, ga, gb, 1, 0);
        EXPECT_TRUE(matches(out, ops::matmul(a, b), gemm_tol(dt), gemm_scale(a, b)));
      }
  // k = 0: the product is zero.
  Tensor out = empty({4, 3}, kGpu);
  ops::gemm_into(out, empty({4, 0}, kGpu), empty({0, 3}, kGpu), 1, 0);
  EXPECT_TRUE(matches(out, zeros({4, 3}), kExact));
}

TEST_F(CudaOps, LinearMatchesCpu) {
  struct Case {
    Shape x;
    int64_t out;
    bool bias;
  };
  const std::vector<Case> cases = {
      {{3, 17, 129}, 20, true}, {{7, 129}, 1, true}, {{1, 129}, 65, false}, {{129}, 20, true}, {{256, 784}, 256, true}};
  uint64_t seed = 1900;
  for (DType dt : kFloatTypes)
    for (const auto& c : cases) {
      SCOPED_TRACE(shape_str(c.x) + " -> " + std::to_string(c.out) + (c.bias ? " with bias " : " ") +
                   std::string(dtype_name(dt)));
      int64_t in = c.x.back();
      Tensor x = randn_cpu(c.x, dt, ++seed), w = randn_cpu({c.out, in}, dt, ++seed);
      Tensor b = c.bias ? randn_cpu({c.out}, dt, ++seed) : Tensor();
      Tensor want = ops::linear(x, w, b);
      Tensor got = ops::linear(to_gpu(x), to_gpu(w), c.bias ? to_gpu(b) : Tensor());
      Tensor scale = ops::matmul(abs_cpu(x), ops::transpose(abs_cpu(w), 0, 1));
      if (c.bias) scale = ops::binary(BinaryOp::Add, scale, abs_cpu(b));
      EXPECT_TRUE(matches(got, want, gemm_tol(dt), scale));
    }
}

// ---- indexing ----

TEST_F(CudaOps, IndexSelectMatchesCpu) {
  uint64_t seed = 2000;
  for (DType dt : {DType::Float32, DType::Float64, DType::Int64}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    auto data = [&](const Shape& s) {
      return dt == DType::Int64 ? randint_cpu(s, -1000, 1000, ++seed) : randn_cpu(s, dt, ++seed);
    };
    Tensor table = data({50, 33}), gtable = to_gpu(table);
    Tensor idx = from_vector(std::vector<int64_t>{3, 49, 3, 0, 17, 17, 3});  // repeated rows
    Tensor idx2 = randint_cpu({3, 4}, 0, 50, ++seed);
    EXPECT_TRUE(matches(ops::index_select(gtable, 0, to_gpu(idx)), ops::index_select(table, 0, idx), kExact));
    EXPECT_TRUE(matches(ops::index_select(gtable, 0, to_gpu(idx2)), ops::index_select(table, 0, idx2), kExact));
    Tensor m = data({33, 65});
    Tensor cols = randint_cpu({100}, 0, 65, ++seed);
    EXPECT_TRUE(matches(ops::index_select(to_gpu(m), 1, to_gpu(cols)), ops::index_select(m, 1, cols), kExact));
    Tensor t3 = data({3, 17, 129});
    Tensor last = randint_cpu({9}, 0, 129, ++seed);
    EXPECT_TRUE(matches(ops::index_select(to_gpu(t3), 2, to_gpu(last)), ops::index_select(t3, 2, last), kExact));
    EXPECT_TRUE(matches(ops::index_select(ops::transpose(gtable, 0, 1), 1, to_gpu(idx)),
                        ops::index_select(ops::transpose(table, 0, 1), 1, idx), kExact));
  }
  std::string msg = error_of([] {
    ops::index_select(zeros({50, 3}, kGpu), 0, to_gpu(from_vector(std::vector<int64_t>{0, 50})));
  });
  EXPECT_CONTAINS(msg, "out of range");
}

TEST_F(CudaOps, IndexAddAndEmbeddingBackwardMatchCpu) {
  uint64_t seed = 2100;
  for (DType dt : kFloatTypes) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    Tol tol = dt == DType::Float64 ? Tol{1e-12, 1e-14} : Tol{1e-5, 1e-6};
    // 4097 rows into 50: every destination row receives about 80 (atomic) additions.
    Tensor idx = randint_cpu({4097}, 0, 50, ++seed), src = randn_cpu({4097, 7}, dt, ++seed);
    Tensor want = ops::index_add({50, 7}, idx, src);
    EXPECT_TRUE(matches(ops::index_add({50, 7}, to_gpu(idx), to_gpu(src)), want, tol,
                        ops::index_add({50, 7}, idx, abs_cpu(src))));
    // Embedding forward and backward through autograd, with repeated indices.
    Tensor w = randn_cpu({50, 33}, dt, ++seed).requires_grad_();
    Tensor gw = to_gpu(w.detach()).requires_grad_();
    Tensor ind = from_vector(std::vector<int64_t>{4, 9, 4, 4, 0, 49, 9, 12, 4, 30, 0, 4}, {3, 4});
    Tensor out = nn::functional::embedding(ind, w), gout = nn::functional::embedding(to_gpu(ind), gw);
    EXPECT_TRUE(matches(gout, out, kExact));
    Tensor upstream = randn_cpu({3, 4, 33}, dt, ++seed);
    braid::sum(braid::mul(out, upstream)).backward();
    braid::sum(braid::mul(gout, to_gpu(upstream))).backward();
    EXPECT_TRUE(matches(gw.grad(), w.grad(), tol));
  }
}

// ---- fused optimizer updates ----

TEST_F(CudaOps, SgdUpdateMatchesCpu) {
  struct Case {
    const char* name;
    double momentum, dampening, weight_decay;
    bool nesterov;
  };
  const Case cases[] = {{"plain", 0, 0, 0, false},
                        {"weight decay", 0, 0, 1e-2, false},
                        {"momentum", 0.9, 0, 0, false},
                        {"nesterov", 0.9, 0, 1e-2, true},
                        {"dampening + weight decay", 0.8, 0.1, 1e-2, false}};
  uint64_t seed = 2200;
  for (DType dt : kFloatTypes)
    for (const Shape& s : {Shape{4097}, Shape{33, 65}})
      for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.name) + " " + shape_str(s) + " " + std::string(dtype_name(dt)));
        Tol tol = elementwise_tol(dt);
        Tensor p = randn_cpu(s, dt, ++seed), gp = to_gpu(p);
        // The buffers start uninitialised (poisoned on the GPU): the first step must not read them.
        Tensor buf = c.momentum != 0 ? empty(s, dt) : Tensor();
        Tensor gbuf = c.momentum != 0 ? empty(s, TensorOptions(dt, kGpu)) : Tensor();
        for (int step = 0; step < 3; ++step) {
          Tensor g = randn_cpu(s, dt, ++seed);
          ops::SgdParams sp{0.1, c.momentum, c.dampening, c.weight_decay, c.nesterov, step == 0};
          ops::sgd_update_(p, g, buf, sp);
          ops::sgd_update_(gp, to_gpu(g), gbuf, sp);
        }
        EXPECT_TRUE(matches(gp, p, tol));
        if (c.momentum != 0) {
          EXPECT_TRUE(matches(gbuf, buf, tol));
        }
      }
}

TEST_F(CudaOps, AdamUpdateMatchesCpu) {
  struct Case {
    const char* name;
    double weight_decay;
    bool decoupled;
  };
  const Case cases[] = {{"adam", 0, false}, {"adam L2", 1e-2, false}, {"adamw", 1e-2, true}};
  uint64_t seed = 2300;
  for (DType dt : kFloatTypes)
    for (const Shape& s : {Shape{4097}, Shape{33, 65}, Shape{1}})
      for (const auto& c : cases) {
        SCOPED_TRACE(std::string(c.name) + " " + shape_str(s) + " " + std::string(dtype_name(dt)));
        Tol tol = elementwise_tol(dt);
        Tensor p = randn_cpu(s, dt, ++seed), m = zeros(s, dt), v = zeros(s, dt);
        Tensor gp = to_gpu(p), gm = zeros(s, TensorOptions(dt, kGpu)), gv = zeros(s, TensorOptions(dt, kGpu));
        for (int64_t step = 1; step <= 3; ++step) {
          Tensor g = randn_cpu(s, dt, ++seed);
          ops::AdamParams ap{1e-2, 0.9, 0.999, 1e-8, c.weight_decay, step, c.decoupled};
          ops::adam_update_(p, g, m, v, ap);
          ops::adam_update_(gp, to_gpu(g), gm, gv, ap);
        }
        EXPECT_TRUE(matches(gp, p, tol));
        EXPECT_TRUE(matches(gm, m, tol));
        EXPECT_TRUE(matches(gv, v, tol));
      }
}

}  // namespace
