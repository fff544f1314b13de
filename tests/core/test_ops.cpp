// core/ ops against hand-written references: element-wise math (with broadcasting, strided inputs and the
// multi-threaded path), reductions, matmul, softmax, clamp, comparisons, and the errors ops raise.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/core/core.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;

namespace {

// Restores the thread count a test changed.
struct ThreadCountGuard {
  int saved = get_num_threads();
  ~ThreadCountGuard() { set_num_threads(saved); }
};

std::vector<int64_t> unravel(int64_t lin, const Shape& s) {
  std::vector<int64_t> idx(s.size());
  for (size_t d = s.size(); d-- > 0;) {
    idx[d] = lin % s[d];
    lin /= s[d];
  }
  return idx;
}

// Linear index into `in` (right-aligned, size-1 dims broadcast) of the output position `out_idx`.
int64_t broadcast_index(const std::vector<int64_t>& out_idx, const Shape& in) {
  size_t off = out_idx.size() - in.size();
  int64_t lin = 0;
  for (size_t d = 0; d < in.size(); ++d) lin = lin * in[d] + (in[d] == 1 ? 0 : out_idx[d + off]);
  return lin;
}

Shape ref_broadcast(const Shape& a, const Shape& b) {
  size_t n = std::max(a.size(), b.size());
  Shape out(n);
  for (size_t i = 0; i < n; ++i) {
    int64_t da = i < n - a.size() ? 1 : a[i - (n - a.size())];
    int64_t db = i < n - b.size() ? 1 : b[i - (n - b.size())];
    out[i] = std::max(da, db);
  }
  return out;
}

std::vector<double> ref_binary(const std::function<double(double, double)>& f, const std::vector<double>& a,
                               const Shape& sa, const std::vector<double>& b, const Shape& sb, const Shape& so) {
  std::vector<double> out(size_t(shape_numel(so)));
  for (int64_t i = 0; i < int64_t(out.size()); ++i) {
    auto idx = unravel(i, so);
    out[i] = f(a[broadcast_index(idx, sa)], b[broadcast_index(idx, sb)]);
  }
  return out;
}

// Values bounded away from zero (for division, logs of |x|, kinks at 0): sign * [0.5, 2).
Tensor away_from_zero(const Shape& s, DType dt, Generator& g) {
  Tensor u = uniform(s, 0.5, 2.0, dt, &g);
  Tensor sign = ops::unary(ops::UnaryOp::Sign, randn(s, dt, &g));
  // randn is exactly 0 with probability 0; keep the guard anyway.
  sign = ops::binary(ops::BinaryOp::Add, sign, ops::binary(ops::BinaryOp::Eq, sign, zeros(s, dt)));
  return ops::binary(ops::BinaryOp::Mul, u, sign);
}

void expect_close(const std::vector<double>& got, const std::vector<double>& want, double rtol, double atol,
                  const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    bool ok =
        std::abs(got[i] - want[i]) <= atol + rtol * std::abs(want[i]) || (std::isnan(got[i]) && std::isnan(want[i]));
    if (!ok && bad++ < 5) ADD_FAILURE() << what << ": element " << i << " is " << got[i] << ", expected " << want[i];
  }
  EXPECT_EQ(bad, 0) << what;
}

double rtol_for(DType dt) { return dt == DType::Float32 ? 2e-6 : 1e-13; }
double atol_for(DType dt) { return dt == DType::Float32 ? 1e-6 : 1e-14; }

double gelu_ref(double x) { return 0.5 * x * (1 + std::erf(x / std::sqrt(2.0))); }

struct BinaryCase {
  ops::BinaryOp op;
  const char* name;
  std::function<double(double, double)> f;
  bool positive_lhs;  // pow: a > 0
};

std::vector<BinaryCase> binary_cases() {
  using B = ops::BinaryOp;
  return {
      {B::Add, "add", [](double a, double b) { return a + b; }, false},
      {B::Sub, "sub", [](double a, double b) { return a - b; }, false},
      {B::Mul, "mul", [](double a, double b) { return a * b; }, false},
      {B::Div, "div", [](double a, double b) { return a / b; }, false},
      {B::Pow, "pow", [](double a, double b) { return std::pow(a, b); }, true},
      {B::Maximum, "maximum", [](double a, double b) { return std::max(a, b); }, false},
      {B::Minimum, "minimum", [](double a, double b) { return std::min(a, b); }, false},
  };
}

// The inputs rounded to the op's dtype, so that the reference sees exactly what the kernel sees.
void check_binary(const BinaryCase& c, const Tensor& a, const Tensor& b, const std::string& label) {
  Tensor out = ops::binary(c.op, a, b);
  Shape so = ref_broadcast(a.shape(), b.shape());
  ASSERT_EQ(out.shape(), so) << label;
  EXPECT_EQ(out.dtype(), a.dtype());
  EXPECT_TRUE(out.is_contiguous());
  auto want = ref_binary(c.f, a.to_vector<double>(), a.shape(), b.to_vector<double>(), b.shape(), so);
  if (a.dtype() == DType::Float32)  // the reference in double, rounded as the float kernel rounds its result
    for (double& w : want) w = double(float(w));
  expect_close(out.to_vector<double>(), want, rtol_for(a.dtype()) * 4, atol_for(a.dtype()), label);
}

}  // namespace

// ---- element-wise ----

class ElementwiseTest : public ::testing::TestWithParam<DType> {};

TEST_P(ElementwiseTest, BinaryOpsWithBroadcasting) {
  DType dt = GetParam();
  Generator g(11);
  const std::vector<std::pair<Shape, Shape>> shapes = {{{5, 6}, {5, 6}},    {{3, 1}, {1, 4}}, {{2, 3, 4}, {4}},
                                                       {{4}, {2, 3, 4}},    {{}, {2, 3}},     {{2, 3}, {}},
                                                       {{2, 1, 4}, {3, 1}}, {{1}, {1}},       {{}, {}}};
  for (const auto& c : binary_cases()) {
    for (const auto& [sa, sb] : shapes) {
      Tensor a = c.positive_lhs ? uniform(sa, 0.2, 3.0, dt, &g) : away_from_zero(sa, dt, g);
      Tensor b = away_from_zero(sb, dt, g);
      check_binary(c, a, b, std::string(c.name) + " " + shape_str(sa) + " with " + shape_str(sb));
    }
  }
}

TEST_P(ElementwiseTest, BinaryOpsOnNonContiguousInputs) {
  DType dt = GetParam();
  Generator g(12);
  Tensor at = ops::transpose(away_from_zero({4, 3}, dt, g), 0, 1);  // [3, 4], strides [1, 3]
  Tensor bt = ops::transpose(away_from_zero({4, 3}, dt, g), 0, 1);
  Tensor b = away_from_zero({3, 4}, dt, g);
  Tensor narrowed = ops::narrow(away_from_zero({3, 7}, dt, g), 1, 2, 4);  // [3, 4], row stride 7
  Tensor expanded = ops::expand(away_from_zero({3, 1}, dt, g), {3, 4});   // stride 0
  Tensor pos = ops::transpose(uniform({4, 3}, 0.2, 3.0, dt, &g), 0, 1);
  for (const auto& c : binary_cases()) {
    Tensor lhs = c.positive_lhs ? pos : at;
    check_binary(c, lhs, b, std::string(c.name) + " transposed lhs");
    check_binary(c, lhs, bt, std::string(c.name) + " both transposed");
    check_binary(c, lhs, narrowed, std::string(c.name) + " narrowed rhs");
    check_binary(c, lhs, expanded, std::string(c.name) + " expanded rhs");
    check_binary(c, lhs, ops::select(bt, 0, 1), std::string(c.name) + " strided row broadcast");
  }
}

TEST_P(ElementwiseTest, UnaryOpsMatchStdMath) {
  DType dt = GetParam();
  Generator g(13);
  using U = ops::UnaryOp;
  struct Case {
    U op;
    const char* name;
    std::function<double(double)> f;
    bool positive;
  };
  std::vector<Case> cases = {
      {U::Neg, "neg", [](double x) { return -x; }, false},
      {U::Exp, "exp", [](double x) { return std::exp(x); }, false},
      {U::Log, "log", [](double x) { return std::log(x); }, true},
      {U::Sqrt, "sqrt", [](double x) { return std::sqrt(x); }, true},
      {U::Abs, "abs", [](double x) { return std::abs(x); }, false},
      {U::Sign, "sign", [](double x) { return double((x > 0) - (x < 0)); }, false},
      {U::Relu, "relu", [](double x) { return x > 0 ? x : 0.0; }, false},
      {U::Gelu, "gelu", gelu_ref, false},
      {U::Tanh, "tanh", [](double x) { return std::tanh(x); }, false},
      {U::Sigmoid, "sigmoid", [](double x) { return 1 / (1 + std::exp(-x)); }, false},
  };
  for (const auto& c : cases) {
    Tensor base = c.positive ? uniform({6, 5}, 0.05, 4.0, dt, &g) : ops::affine(randn({6, 5}, dt, &g), 2.0, 0.0);
    for (const Tensor& x : {base, ops::transpose(base, 0, 1), ops::narrow(base, 1, 1, 3), ops::select(base, 1, 2)}) {
      Tensor y = ops::unary(c.op, x);
      ASSERT_EQ(y.shape(), x.shape());
      std::vector<double> want;
      for (double v : x.to_vector<double>()) want.push_back(c.f(v));
      expect_close(y.to_vector<double>(), want, rtol_for(dt) * 4, atol_for(dt),
                   std::string(c.name) + " " + shape_str(x.shape()) + " strides " + shape_str(x.strides()));
    }
  }
  // Relu at exactly 0 and at negative zero gives 0.
  std::vector<double> r = ops::unary(U::Relu, from_vector(std::vector<double>{0.0, -0.0, -1e-300})).to_vector<double>();
  for (double v : r) EXPECT_EQ(v, 0.0);
}

TEST_P(ElementwiseTest, AffineClampPowScalar) {
  DType dt = GetParam();
  Generator g(14);
  Tensor x = ops::affine(randn({7, 3}, dt, &g), 2.0, 0.0);
  std::vector<double> xv = x.to_vector<double>();

  std::vector<double> want;
  for (double v : xv) want.push_back(v * -1.5 + 0.25);
  expect_close(ops::affine(x, -1.5, 0.25).to_vector<double>(), want, rtol_for(dt) * 4, atol_for(dt), "affine");

  want.clear();
  for (double v : xv) want.push_back(std::clamp(v, -0.5, 1.0));
  std::vector<double> got = ops::clamp(x, -0.5, 1.0).to_vector<double>();
  EXPECT_EQ(got, want);  // clamp only selects values: exact
  want.clear();
  std::vector<double> xt = ops::transpose(x, 0, 1).to_vector<double>();
  for (double v : xt) want.push_back(std::clamp(v, 0.0, 0.5));
  EXPECT_EQ(ops::clamp(ops::transpose(x, 0, 1), 0.0, 0.5).to_vector<double>(), want);
  EXPECT_THROW(ops::clamp(x, 1.0, -1.0), Error);

  Tensor pos = uniform({10}, 0.1, 3.0, dt, &g);
  for (double e : {2.0, 3.0, 0.5, -1.5}) {
    want.clear();
    for (double v : pos.to_vector<double>()) want.push_back(std::pow(v, e));
    expect_close(ops::pow_scalar(pos, e).to_vector<double>(), want, rtol_for(dt) * 8, atol_for(dt),
                 "pow_scalar " + std::to_string(e));
  }
}

TEST_P(ElementwiseTest, Comparisons) {
  DType dt = GetParam();
  std::vector<double> av{1, 2, 3, 4, -1, 0}, bv{1, 3, 2, 4, -2, 0};
  Tensor a = ops::to_dtype(from_vector(av, {2, 3}), dt), b = ops::to_dtype(from_vector(bv, {2, 3}), dt);
  using B = ops::BinaryOp;
  struct Case {
    B op;
    std::function<bool(double, double)> f;
  };
  std::vector<Case> cases = {
      {B::Eq, [](double x, double y) { return x == y; }}, {B::Ne, [](double x, double y) { return x != y; }},
      {B::Lt, [](double x, double y) { return x < y; }},  {B::Le, [](double x, double y) { return x <= y; }},
      {B::Gt, [](double x, double y) { return x > y; }},  {B::Ge, [](double x, double y) { return x >= y; }}};
  for (const auto& c : cases) {
    Tensor r = ops::binary(c.op, a, b);
    EXPECT_EQ(r.dtype(), dt);
    std::vector<double> got = r.to_vector<double>();
    for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(got[i], c.f(av[i], bv[i]) ? 1.0 : 0.0) << int(c.op) << " " << i;
    // Broadcast against a scalar.
    Tensor s = ops::binary(c.op, a, ops::to_dtype(scalar_tensor(2), dt));
    std::vector<double> sv = s.to_vector<double>();
    for (size_t i = 0; i < av.size(); ++i) EXPECT_EQ(sv[i], c.f(av[i], 2) ? 1.0 : 0.0);
  }
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ElementwiseTest, ::testing::Values(DType::Float32, DType::Float64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Elementwise, Int64Arithmetic) {
  Tensor a = from_vector(std::vector<int64_t>{1, -2, 3}), b = from_vector(std::vector<int64_t>{10, 20, 30});
  EXPECT_EQ(ops::binary(ops::BinaryOp::Add, a, b).to_vector<int64_t>(), (std::vector<int64_t>{11, 18, 33}));
  EXPECT_EQ(ops::binary(ops::BinaryOp::Mul, a, b).to_vector<int64_t>(), (std::vector<int64_t>{10, -40, 90}));
  EXPECT_EQ(ops::unary(ops::UnaryOp::Abs, a).to_vector<int64_t>(), (std::vector<int64_t>{1, 2, 3}));
  EXPECT_EQ(ops::sum(a).item<int64_t>(), 2);
}

TEST(Elementwise, InPlaceOps) {
  Tensor d = zeros({2, 3}, DType::Float64);
  ops::fill_(d, 1.5);
  ops::add_(d, from_vector(std::vector<double>{1, 2, 3}), 2.0);  // broadcast row, alpha 2
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{3.5, 5.5, 7.5, 3.5, 5.5, 7.5}));
  ops::mul_(d, -2);
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{-7, -11, -15, -7, -11, -15}));
  Tensor col = ops::select(d, 1, 0);  // strided in-place update touches only the column
  ops::add_(col, ones({2}, DType::Float64));
  EXPECT_EQ(d.to_vector<double>(), (std::vector<double>{-6, -11, -15, -6, -11, -15}));
  EXPECT_THROW(ops::add_(col, ones({3}, DType::Float64)), Error);
  EXPECT_THROW(ops::add_(col, ones({2}, DType::Float32)), Error);
  Tensor out = zeros({2, 2}, DType::Float64);  // affine_: out = src * scale + shift, also from a strided source
  ops::affine_(out, ops::transpose(from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}), 0, 1), 0.5, 1);
  EXPECT_EQ(out.to_vector<double>(), (std::vector<double>{1.5, 2.5, 2, 3}));
  EXPECT_THROW(ops::affine_(out, ones({4}, DType::Float64), 2), Error);
  EXPECT_THROW(ops::affine_(out, ones({2, 2}, DType::Float32), 2), Error);
}

// ---- the multi-threaded path ----

TEST(ElementwiseThreads, LargeTensorsMatchReferenceForOneAndTwoThreads) {
  ThreadCountGuard guard;
  Generator g(21);
  const Shape big{256, 160};  // 40960 elements: above the parallel grain
  ASSERT_GT(shape_numel(big), 32768);
  Tensor a = randn(big, {}, &g), row = randn({160}, {}, &g);
  Tensor bt = ops::transpose(randn({160, 256}, {}, &g), 0, 1);
  Tensor pos = uniform(big, 0.1, 4.0, {}, &g);

  auto run = [&] {
    std::vector<std::vector<double>> r;
    r.push_back(ops::binary(ops::BinaryOp::Add, a, row).to_vector<double>());
    r.push_back(ops::binary(ops::BinaryOp::Mul, a, bt).to_vector<double>());
    r.push_back(ops::binary(ops::BinaryOp::Div, bt, pos).to_vector<double>());
    r.push_back(ops::unary(ops::UnaryOp::Exp, a).to_vector<double>());
    r.push_back(ops::unary(ops::UnaryOp::Tanh, bt).to_vector<double>());
    r.push_back(ops::unary(ops::UnaryOp::Gelu, a).to_vector<double>());
    r.push_back(ops::unary(ops::UnaryOp::Log, pos).to_vector<double>());
    r.push_back(ops::affine(bt, 3, 1).to_vector<double>());
    r.push_back(ops::clamp(a, -0.3, 0.4).to_vector<double>());
    r.push_back(ops::contiguous(bt).to_vector<double>());
    return r;
  };
  // Narrow rows: the innermost run is short, so the parallel split cuts across rows.
  Tensor tall = randn({20000, 3}, {}, &g), col = randn({20000, 1}, {}, &g);
  auto run_tall = [&] { return ops::binary(ops::BinaryOp::Mul, tall, col).to_vector<double>(); };
  set_num_threads(1);
  ASSERT_EQ(get_num_threads(), 1);
  auto tall_one = run_tall();
  auto one = run();
  set_num_threads(2);
  ASSERT_EQ(get_num_threads(), 2);
  auto two = run();
  auto tall_two = run_tall();
  std::vector<double> tv = tall.to_vector<double>(), cv = col.to_vector<double>(), tall_want;
  for (size_t i = 0; i < tv.size(); ++i) tall_want.push_back(float(tv[i] * cv[i / 3]));
  expect_close(tall_one, tall_want, 0, 0, "[20000, 3] * [20000, 1], 1 thread");
  expect_close(tall_two, tall_want, 0, 0, "[20000, 3] * [20000, 1], 2 threads");

  std::vector<double> av = a.to_vector<double>(), rv = row.to_vector<double>(), bv = bt.to_vector<double>(),
                      pv = pos.to_vector<double>();
  std::vector<std::vector<double>> want(10);
  for (size_t i = 0; i < av.size(); ++i) {
    want[0].push_back(float(av[i] + rv[i % 160]));
    want[1].push_back(float(av[i] * bv[i]));
    want[2].push_back(float(bv[i] / pv[i]));
    want[3].push_back(std::exp(av[i]));
    want[4].push_back(std::tanh(bv[i]));
    want[5].push_back(gelu_ref(av[i]));
    want[6].push_back(std::log(pv[i]));
    want[7].push_back(float(bv[i] * 3 + 1));
    want[8].push_back(std::clamp(av[i], double(-0.3f), double(0.4f)));
    want[9].push_back(bv[i]);
  }
  for (size_t k = 0; k < want.size(); ++k) {
    expect_close(one[k], want[k], 1e-5, 1e-6, "1 thread, case " + std::to_string(k));
    expect_close(two[k], want[k], 1e-5, 1e-6, "2 threads, case " + std::to_string(k));
    expect_close(two[k], one[k], 1e-6, 1e-7, "1 vs 2 threads, case " + std::to_string(k));
  }
}

TEST(ElementwiseThreads, LargeReductionsAndSoftmaxAgreeAcrossThreadCounts) {
  ThreadCountGuard guard;
  Generator g(22);
  Tensor a = randn({300, 200}, {}, &g);
  Tensor at = ops::transpose(randn({200, 300}, {}, &g), 0, 1);
  Tensor flat = randn({70000}, DType::Float64, &g);
  auto run = [&] {
    std::vector<std::vector<double>> r;
    r.push_back(ops::sum(a).to_vector<double>());
    r.push_back(ops::sum(a, {0}).to_vector<double>());
    r.push_back(ops::sum(at, {1}).to_vector<double>());
    r.push_back(ops::mean(a, {1}, true).to_vector<double>());
    r.push_back(ops::amax(a).to_vector<double>());
    r.push_back(ops::amin(at, {0}).to_vector<double>());
    r.push_back(ops::sum(flat).to_vector<double>());
    r.push_back(ops::amax(flat).to_vector<double>());
    r.push_back(ops::amin(flat).to_vector<double>());
    r.push_back(ops::to_dtype(ops::argmax(a, 1), DType::Float64).to_vector<double>());
    r.push_back(ops::softmax(a, 1).to_vector<double>());
    r.push_back(ops::softmax(at, 0, true).to_vector<double>());
    return r;
  };
  set_num_threads(1);
  auto one = run();
  set_num_threads(2);
  auto two = run();
  ASSERT_EQ(one.size(), two.size());
  for (size_t k = 0; k < one.size(); ++k) expect_close(two[k], one[k], 1e-6, 1e-6, "case " + std::to_string(k));

  // And against hand loops.
  std::vector<double> av = a.to_vector<double>(), fv = flat.to_vector<double>();
  double total = 0, ftotal = 0, fmax = -1e300, fmin = 1e300;
  for (double v : av) total += v;
  for (double v : fv) ftotal += v, fmax = std::max(fmax, v), fmin = std::min(fmin, v);
  EXPECT_NEAR(two[0][0], total, 1e-3);
  EXPECT_NEAR(two[6][0], ftotal, 1e-9);
  EXPECT_EQ(two[7][0], fmax);
  EXPECT_EQ(two[8][0], fmin);
  std::vector<double> col(200, 0.0);
  for (int64_t i = 0; i < 300; ++i)
    for (int64_t j = 0; j < 200; ++j) col[j] += av[i * 200 + j];
  expect_close(two[1], col, 1e-5, 1e-4, "sum dim 0");
}

TEST(ElementwiseThreads, LongRowReductionsFindExtremesAnywhere) {
  // One long row is split across the threads; the extremes must be found in whichever part holds them.
  ThreadCountGuard guard;
  const int64_t n = 70001;
  for (DType dt : {DType::Float32, DType::Float64}) {
    for (int64_t where : {int64_t(3), n / 2 + 7, n - 1}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " extremes at " + std::to_string(where));
      Tensor x = ones({n}, dt);
      ops::fill_(ops::narrow(x, 0, where, 1), 5);
      ops::fill_(ops::narrow(x, 0, (where + n / 3) % n, 1), -3);
      for (int threads : {1, 2}) {
        set_num_threads(threads);
        EXPECT_EQ(ops::amax(x).item<double>(), 5.0) << threads << " threads";
        EXPECT_EQ(ops::amin(x).item<double>(), -3.0) << threads << " threads";
        EXPECT_EQ(ops::sum(x).item<double>(), double(n - 2) + 5 - 3) << threads << " threads";
        EXPECT_EQ(ops::argmax(x, 0).item<int64_t>(), where) << threads << " threads";
        EXPECT_EQ(ops::argmin(x, 0).item<int64_t>(), (where + n / 3) % n) << threads << " threads";
        // Two long rows, too.
        Tensor two = ops::stack({x, ops::affine(x, -1, 0)}, 0);
        EXPECT_EQ(ops::amax(two, {1}).to_vector<double>(), (std::vector<double>{5, 3})) << threads << " threads";
      }
    }
  }
}

// ---- reductions ----

namespace {
enum class Red { Sum, Mean, Max, Min };

// Reference reduction over `dims` (empty = all) of a row-major array.
std::vector<double> ref_reduce(Red r, const std::vector<double>& x, const Shape& s, std::vector<int64_t> dims,
                               bool keepdim, Shape& out_shape) {
  int64_t nd = int64_t(s.size());
  if (dims.empty())
    for (int64_t d = 0; d < nd; ++d) dims.push_back(d);
  std::vector<bool> red(size_t(nd), false);
  for (int64_t d : dims) red[size_t(d < 0 ? d + nd : d)] = true;
  Shape kept;  // the output shape with keepdim
  out_shape.clear();
  for (int64_t d = 0; d < nd; ++d) {
    kept.push_back(red[d] ? 1 : s[d]);
    if (!red[d] || keepdim) out_shape.push_back(red[d] ? 1 : s[d]);
  }
  int64_t n_out = shape_numel(kept);
  double init = r == Red::Max ? -INFINITY : r == Red::Min ? INFINITY : 0.0;
  std::vector<double> out(size_t(n_out), init);
  std::vector<int64_t> count(size_t(n_out), 0);
  for (int64_t i = 0; i < int64_t(x.size()); ++i) {
    auto idx = unravel(i, s);
    int64_t o = 0;
    for (int64_t d = 0; d < nd; ++d) o = o * kept[d] + (red[d] ? 0 : idx[d]);
    if (r == Red::Max)
      out[o] = std::max(out[o], x[i]);
    else if (r == Red::Min)
      out[o] = std::min(out[o], x[i]);
    else
      out[o] += x[i];
    ++count[o];
  }
  if (r == Red::Mean)
    for (int64_t o = 0; o < n_out; ++o) out[o] /= double(count[o]);
  return out;
}

// Index of the first max (or min) along `dim`, as a flat array over the other dims.
std::vector<int64_t> ref_arg(bool max, const std::vector<double>& x, const Shape& s, int64_t dim) {
  int64_t outer = 1, n = s[dim], inner = 1;
  for (int64_t d = 0; d < dim; ++d) outer *= s[d];
  for (int64_t d = dim + 1; d < int64_t(s.size()); ++d) inner *= s[d];
  std::vector<int64_t> out;
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t k = 0; k < inner; ++k) {
      int64_t best = 0;
      for (int64_t j = 1; j < n; ++j) {
        double v = x[(o * n + j) * inner + k], b = x[(o * n + best) * inner + k];
        if (max ? v > b : v < b) best = j;
      }
      out.push_back(best);
    }
  return out;
}
}  // namespace

class ReductionTest : public ::testing::TestWithParam<DType> {};

TEST_P(ReductionTest, SumMeanMaxMinMatchHandLoops) {
  DType dt = GetParam();
  Generator g(31);
  const Shape s{3, 4, 5, 2};
  Tensor x = randn(s, dt, &g);
  std::vector<double> xv = x.to_vector<double>();
  const std::vector<std::vector<int64_t>> dim_sets = {{},     {0},    {2},    {-1},      {1, 2},
                                                      {0, 2}, {1, 3}, {0, 3}, {3, 0, 1}, {0, 1, 2, 3}};
  struct Op {
    Red r;
    const char* name;
    std::function<Tensor(const Tensor&, std::vector<int64_t>, bool)> f;
  };
  std::vector<Op> ops_list = {
      {Red::Sum, "sum", [](const Tensor& t, std::vector<int64_t> d, bool k) { return ops::sum(t, d, k); }},
      {Red::Mean, "mean", [](const Tensor& t, std::vector<int64_t> d, bool k) { return ops::mean(t, d, k); }},
      {Red::Max, "amax", [](const Tensor& t, std::vector<int64_t> d, bool k) { return ops::amax(t, d, k); }},
      {Red::Min, "amin", [](const Tensor& t, std::vector<int64_t> d, bool k) { return ops::amin(t, d, k); }},
  };
  for (const auto& op : ops_list)
    for (const auto& dims : dim_sets)
      for (bool keepdim : {false, true}) {
        Shape want_shape;
        auto want = ref_reduce(op.r, xv, s, dims, keepdim, want_shape);
        Tensor y = op.f(x, dims, keepdim);
        std::string label = std::string(op.name) + " dims " + shape_str(dims) + (keepdim ? " keepdim" : "");
        EXPECT_EQ(y.shape(), want_shape) << label;
        EXPECT_EQ(y.dtype(), dt) << label;
        expect_close(y.to_vector<double>(), want, rtol_for(dt) * 10, atol_for(dt) * 10, label);
        // The same reduction of a permuted (non-contiguous) view.
        Tensor xp = ops::permute(x, {2, 0, 3, 1});
        Shape pws;
        auto pwant = ref_reduce(op.r, xp.to_vector<double>(), xp.shape(), dims, keepdim, pws);
        Tensor yp = op.f(xp, dims, keepdim);
        EXPECT_EQ(yp.shape(), pws) << label << " (permuted input)";
        expect_close(yp.to_vector<double>(), pwant, rtol_for(dt) * 10, atol_for(dt) * 10, label + " (permuted input)");
      }
}

TEST_P(ReductionTest, NonAdjacentDimsOnTransposedInput) {
  DType dt = GetParam();
  Generator g(32);
  Tensor base = randn({5, 4, 3}, dt, &g);
  Tensor x = ops::transpose(base, 0, 2);  // [3, 4, 5], non-contiguous
  std::vector<double> xv = x.to_vector<double>();
  for (bool keepdim : {false, true}) {
    Shape ws;
    auto want = ref_reduce(Red::Sum, xv, x.shape(), {0, 2}, keepdim, ws);
    Tensor y = ops::sum(x, {0, 2}, keepdim);
    EXPECT_EQ(y.shape(), ws);
    expect_close(y.to_vector<double>(), want, rtol_for(dt) * 10, atol_for(dt) * 10, "sum {0,2} of transposed");
    want = ref_reduce(Red::Max, xv, x.shape(), {2, 0}, keepdim, ws);
    expect_close(ops::amax(x, {2, 0}, keepdim).to_vector<double>(), want, 0, 0, "amax {2,0} of transposed");
  }
  EXPECT_THROW(ops::sum(x, {0, 0}), Error);
  EXPECT_THROW(ops::sum(x, {3}), Error);
}

TEST_P(ReductionTest, ArgmaxArgmin) {
  DType dt = GetParam();
  Generator g(33);
  const Shape s{3, 5, 4};
  Tensor x = randn(s, dt, &g);
  std::vector<double> xv = x.to_vector<double>();
  for (int64_t dim = 0; dim < 3; ++dim) {
    for (bool keepdim : {false, true}) {
      Tensor am = ops::argmax(x, dim, keepdim), an = ops::argmin(x, dim - 3, keepdim);
      EXPECT_EQ(am.dtype(), DType::Int64);
      Shape ws = s;
      if (keepdim)
        ws[dim] = 1;
      else
        ws.erase(ws.begin() + dim);
      EXPECT_EQ(am.shape(), ws);
      EXPECT_EQ(an.shape(), ws);
      EXPECT_EQ(am.to_vector<int64_t>(), ref_arg(true, xv, s, dim)) << "argmax dim " << dim;
      EXPECT_EQ(an.to_vector<int64_t>(), ref_arg(false, xv, s, dim)) << "argmin dim " << dim;
    }
  }
  // Over all elements: the flat index, as PyTorch's argmax without a dim.
  int64_t flat_max = std::max_element(xv.begin(), xv.end()) - xv.begin();
  int64_t flat_min = std::min_element(xv.begin(), xv.end()) - xv.begin();
  EXPECT_EQ(ops::argmax(ops::flatten(x), 0).item<int64_t>(), flat_max);
  EXPECT_EQ(ops::argmin(ops::reshape(x, {-1}), 0).item<int64_t>(), flat_min);
  // Ties: the first index wins.
  Tensor t = ops::to_dtype(from_vector(std::vector<double>{1, 3, 3, 0, 0, 2}, {2, 3}), dt);
  EXPECT_EQ(ops::argmax(t, 1).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
  EXPECT_EQ(ops::argmin(t, 1).to_vector<int64_t>(), (std::vector<int64_t>{0, 0}));
  // Transposed input.
  Tensor tt = ops::transpose(t, 0, 1);  // [[1,0],[3,0],[3,2]]
  EXPECT_EQ(ops::argmax(tt, 0).to_vector<int64_t>(), (std::vector<int64_t>{1, 2}));
}

INSTANTIATE_TEST_SUITE_P(Dtypes, ReductionTest, ::testing::Values(DType::Float32, DType::Float64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

TEST(Reduction, SumToUndoesBroadcast) {
  Tensor g = ops::reshape(arange(24, DType::Float64), {2, 3, 4});
  Tensor r = ops::sum_to(g, {3, 1});
  EXPECT_EQ(r.shape(), (Shape{3, 1}));
  std::vector<double> gv = g.to_vector<double>();
  for (int64_t j = 0; j < 3; ++j) {
    double s = 0;
    for (int64_t i = 0; i < 2; ++i)
      for (int64_t k = 0; k < 4; ++k) s += gv[(i * 3 + j) * 4 + k];
    EXPECT_EQ(r.to_vector<double>()[j], s);
  }
  EXPECT_EQ(ops::sum_to(g, {4}).to_vector<double>(), (std::vector<double>{60, 66, 72, 78}));
  EXPECT_EQ(ops::sum_to(g, {}).item<double>(), 276.0);
}

// ---- matmul ----

namespace {
// Naive [B, M, K] @ [B, K, N] (the batch of either side may be 1 and broadcast).
std::vector<double> naive_bmm(const std::vector<double>& a, const std::vector<double>& b, int64_t ba, int64_t bb,
                              int64_t m, int64_t k, int64_t n) {
  int64_t batch = std::max(ba, bb);
  std::vector<double> c(size_t(batch * m * n), 0.0);
  for (int64_t z = 0; z < batch; ++z)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double s = 0;
        for (int64_t p = 0; p < k; ++p)
          s += a[((ba == 1 ? 0 : z) * m + i) * k + p] * b[((bb == 1 ? 0 : z) * k + p) * n + j];
        c[(z * m + i) * n + j] = s;
      }
  return c;
}

double mm_rtol(DType dt) { return dt == DType::Float32 ? 1e-4 : 1e-12; }
double mm_atol(DType dt) { return dt == DType::Float32 ? 1e-4 : 1e-12; }
}  // namespace

class MatmulTest : public ::testing::TestWithParam<DType> {};

TEST_P(MatmulTest, TwoD) {
  DType dt = GetParam();
  Generator g(41);
  for (auto [m, k, n] : std::vector<std::array<int64_t, 3>>{{5, 7, 3}, {1, 4, 6}, {6, 1, 2}, {33, 17, 9}, {3, 5, 1}}) {
    Tensor a = randn({m, k}, dt, &g), b = randn({k, n}, dt, &g);
    Tensor c = ops::matmul(a, b);
    EXPECT_EQ(c.shape(), (Shape{m, n}));
    expect_close(c.to_vector<double>(), naive_bmm(a.to_vector<double>(), b.to_vector<double>(), 1, 1, m, k, n),
                 mm_rtol(dt), mm_atol(dt), "matmul " + shape_str({m, k, n}));
  }
}

TEST_P(MatmulTest, TransposedAndStridedOperands) {
  DType dt = GetParam();
  Generator g(42);
  const int64_t m = 6, k = 8, n = 5;
  Tensor a = randn({m, k}, dt, &g), b = randn({k, n}, dt, &g);
  auto want = naive_bmm(a.to_vector<double>(), b.to_vector<double>(), 1, 1, m, k, n);
  Tensor at = ops::transpose(ops::contiguous(ops::transpose(a, 0, 1)), 0, 1);  // same values, column-major
  Tensor bt = ops::transpose(ops::contiguous(ops::transpose(b, 0, 1)), 0, 1);
  ASSERT_FALSE(at.is_contiguous());
  ASSERT_FALSE(bt.is_contiguous());
  expect_close(ops::matmul(at, b).to_vector<double>(), want, mm_rtol(dt), mm_atol(dt), "a^T storage");
  expect_close(ops::matmul(a, bt).to_vector<double>(), want, mm_rtol(dt), mm_atol(dt), "b^T storage");
  expect_close(ops::matmul(at, bt).to_vector<double>(), want, mm_rtol(dt), mm_atol(dt), "both ^T storage");

  // Row-strided operands (leading dimension larger than the width).
  Tensor wide = randn({m, k + 3}, dt, &g);
  Tensor an = ops::narrow(wide, 1, 2, k);
  expect_close(ops::matmul(an, b).to_vector<double>(),
               naive_bmm(an.to_vector<double>(), b.to_vector<double>(), 1, 1, m, k, n), mm_rtol(dt), mm_atol(dt),
               "narrowed lhs");
  // A row-strided rhs, a column-major rhs with a large leading dimension, and a layout BLAS cannot read
  // directly (both strides > 1, copied first).
  Tensor rows = ops::select(randn({k, 2, n}, dt, &g), 1, 1);                           // strides [2n, 1]
  Tensor cols = ops::select(ops::permute(randn({n, 3, k}, dt, &g), {2, 1, 0}), 1, 2);  // strides [1, 3k]
  Tensor both = ops::select(randn({k, n, 2}, dt, &g), 2, 0);                           // strides [2n, 2]
  ASSERT_EQ(cols.strides()[0], 1);
  ASSERT_GT(both.strides()[1], 1);
  for (const Tensor& rhs : {rows, cols, both}) {
    expect_close(ops::matmul(a, rhs).to_vector<double>(),
                 naive_bmm(a.to_vector<double>(), rhs.to_vector<double>(), 1, 1, m, k, n), mm_rtol(dt), mm_atol(dt),
                 "rhs strides " + shape_str(rhs.strides()));
    Tensor lhs = ops::transpose(rhs, 0, 1);  // [n, k] @ [k, m]
    Tensor r2 = ops::transpose(a, 0, 1);
    expect_close(ops::matmul(lhs, r2).to_vector<double>(),
                 naive_bmm(lhs.to_vector<double>(), r2.to_vector<double>(), 1, 1, n, k, m), mm_rtol(dt), mm_atol(dt),
                 "lhs strides " + shape_str(lhs.strides()));
  }
}

TEST_P(MatmulTest, BatchedAndNDByTwoD) {
  DType dt = GetParam();
  Generator g(43);
  const int64_t B = 4, m = 3, k = 6, n = 5;
  Tensor a = randn({B, m, k}, dt, &g), b = randn({B, k, n}, dt, &g);
  Tensor c = ops::matmul(a, b);
  EXPECT_EQ(c.shape(), (Shape{B, m, n}));
  expect_close(c.to_vector<double>(), naive_bmm(a.to_vector<double>(), b.to_vector<double>(), B, B, m, k, n),
               mm_rtol(dt), mm_atol(dt), "bmm");

  // Transposed batch operands.
  Tensor bt = ops::transpose(randn({B, n, k}, dt, &g), 1, 2);
  expect_close(ops::matmul(a, bt).to_vector<double>(),
               naive_bmm(a.to_vector<double>(), bt.to_vector<double>(), B, B, m, k, n), mm_rtol(dt), mm_atol(dt),
               "bmm transposed rhs");
  Tensor at = ops::transpose(randn({B, k, m}, dt, &g), 1, 2);
  expect_close(ops::matmul(at, b).to_vector<double>(),
               naive_bmm(at.to_vector<double>(), b.to_vector<double>(), B, B, m, k, n), mm_rtol(dt), mm_atol(dt),
               "bmm transposed lhs");

  // Batch broadcast and 2-D @ 3-D.
  Tensor a1 = randn({1, m, k}, dt, &g);
  expect_close(ops::matmul(a1, b).to_vector<double>(),
               naive_bmm(a1.to_vector<double>(), b.to_vector<double>(), 1, B, m, k, n), mm_rtol(dt), mm_atol(dt),
               "batch-1 lhs");
  Tensor a2 = randn({m, k}, dt, &g);
  Tensor c2 = ops::matmul(a2, b);
  EXPECT_EQ(c2.shape(), (Shape{B, m, n}));
  expect_close(c2.to_vector<double>(), naive_bmm(a2.to_vector<double>(), b.to_vector<double>(), 1, B, m, k, n),
               mm_rtol(dt), mm_atol(dt), "2-D @ 3-D");

  // N-D @ 2-D: the leading dims fold into rows.
  Tensor x = randn({2, 3, 4, k}, dt, &g), w = randn({k, n}, dt, &g);
  Tensor y = ops::matmul(x, w);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 4, n}));
  expect_close(y.to_vector<double>(), naive_bmm(x.to_vector<double>(), w.to_vector<double>(), 1, 1, 24, k, n),
               mm_rtol(dt), mm_atol(dt), "4-D @ 2-D");
  Tensor xt = ops::transpose(randn({2, k, 4}, dt, &g), 1, 2);  // non-contiguous N-D lhs
  expect_close(ops::matmul(xt, w).to_vector<double>(),
               naive_bmm(xt.to_vector<double>(), w.to_vector<double>(), 1, 1, 8, k, n), mm_rtol(dt), mm_atol(dt),
               "transposed 3-D @ 2-D");

  // Vectors.
  Tensor v = randn({k}, dt, &g);
  Tensor mv = ops::matmul(a2, v);
  EXPECT_EQ(mv.shape(), (Shape{m}));
  expect_close(mv.to_vector<double>(), naive_bmm(a2.to_vector<double>(), v.to_vector<double>(), 1, 1, m, k, 1),
               mm_rtol(dt), mm_atol(dt), "matrix @ vector");
  Tensor dot = ops::matmul(v, v);  // vector @ vector: a 0-d dot product
  EXPECT_EQ(dot.dim(), 0);
  double dv = 0;
  for (double e : v.to_vector<double>()) dv += e * e;
  EXPECT_NEAR(dot.item<double>(), dv, mm_atol(dt) * 10);
  Tensor bv3 = ops::matmul(x, v);  // N-D @ vector
  EXPECT_EQ(bv3.shape(), (Shape{2, 3, 4}));
  expect_close(bv3.to_vector<double>(), naive_bmm(x.to_vector<double>(), v.to_vector<double>(), 1, 1, 24, k, 1),
               mm_rtol(dt), mm_atol(dt), "4-D @ vector");
  Tensor vm = ops::matmul(v, w);
  EXPECT_EQ(vm.shape(), (Shape{n}));
  expect_close(vm.to_vector<double>(), naive_bmm(v.to_vector<double>(), w.to_vector<double>(), 1, 1, 1, k, n),
               mm_rtol(dt), mm_atol(dt), "vector @ matrix");
}

TEST_P(MatmulTest, LinearMatchesMatmulPlusBias) {
  DType dt = GetParam();
  Generator g(44);
  Tensor x = randn({2, 3, 6}, dt, &g), w = randn({4, 6}, dt, &g), bias = randn({4}, dt, &g);
  Tensor y = ops::linear(x, w, bias);
  EXPECT_EQ(y.shape(), (Shape{2, 3, 4}));
  auto want =
      naive_bmm(x.to_vector<double>(), ops::contiguous(ops::transpose(w, 0, 1)).to_vector<double>(), 1, 1, 6, 6, 4);
  std::vector<double> bv = bias.to_vector<double>();
  for (size_t i = 0; i < want.size(); ++i) want[i] += bv[i % 4];
  expect_close(y.to_vector<double>(), want, mm_rtol(dt), mm_atol(dt), "linear");
  Tensor y0 = ops::linear(x, w, Tensor());
  for (size_t i = 0; i < want.size(); ++i) want[i] -= bv[i % 4];
  expect_close(y0.to_vector<double>(), want, mm_rtol(dt), mm_atol(dt), "linear without bias");
}

INSTANTIATE_TEST_SUITE_P(Dtypes, MatmulTest, ::testing::Values(DType::Float32, DType::Float64),
                         [](const auto& info) { return std::string(dtype_name(info.param)); });

// ---- softmax and nll ----

TEST(Softmax, RowsSumToOneAndMatchReference) {
  for (DType dt : {DType::Float32, DType::Float64}) {
    Generator g(51);
    Tensor x = ops::affine(randn({5, 7}, dt, &g), 3, 0);
    std::vector<double> xv = x.to_vector<double>();
    Tensor s = ops::softmax(x, 1), ls = ops::softmax(x, -1, true);
    std::vector<double> sv = s.to_vector<double>(), lv = ls.to_vector<double>();
    double tol = dt == DType::Float32 ? 1e-5 : 1e-12;
    for (int64_t i = 0; i < 5; ++i) {
      double mx = -1e300, z = 0, rs = 0, rl = 0;
      for (int64_t j = 0; j < 7; ++j) mx = std::max(mx, xv[i * 7 + j]);
      for (int64_t j = 0; j < 7; ++j) z += std::exp(xv[i * 7 + j] - mx);
      for (int64_t j = 0; j < 7; ++j) {
        double p = std::exp(xv[i * 7 + j] - mx) / z;
        EXPECT_GT(sv[i * 7 + j], 0);
        EXPECT_NEAR(sv[i * 7 + j], p, tol);
        EXPECT_NEAR(lv[i * 7 + j], std::log(p), tol * 10);
        rs += sv[i * 7 + j];
        rl += std::exp(lv[i * 7 + j]);
      }
      EXPECT_NEAR(rs, 1.0, tol);
      EXPECT_NEAR(rl, 1.0, tol);
    }
    // Along dim 0 (a strided softmax) and of a transposed input: columns sum to one.
    for (const Tensor& in : {x, ops::transpose(ops::affine(randn({7, 5}, dt, &g), 2, 0), 0, 1)}) {
      Tensor c = ops::softmax(in, 0);
      Tensor colsum = ops::sum(c, {0});
      for (double v : colsum.to_vector<double>()) EXPECT_NEAR(v, 1.0, tol);
      // Softmax along dim 0 equals the transpose of the row softmax of the transpose.
      expect_close(c.to_vector<double>(),
                   ops::transpose(ops::softmax(ops::contiguous(ops::transpose(in, 0, 1)), 1), 0, 1).to_vector<double>(),
                   tol, tol, "softmax dim 0");
    }
  }
}

TEST(Softmax, StableForLargeInputs) {
  Tensor x = from_vector(std::vector<float>{1000, 1001, 1002, -1000}, {1, 4});
  std::vector<float> s = ops::softmax(x, 1).to_vector<float>();
  std::vector<float> l = ops::softmax(x, 1, true).to_vector<float>();
  for (float v : s) EXPECT_TRUE(std::isfinite(v));
  for (int j = 0; j < 3; ++j) EXPECT_TRUE(std::isfinite(l[j]));
  double z = std::exp(-2.0) + std::exp(-1.0) + 1;
  EXPECT_NEAR(s[2], 1 / z, 1e-6);
  EXPECT_NEAR(l[0], -2 - std::log(z), 1e-4);
  EXPECT_EQ(s[3], 0.0f);
}

TEST(Softmax, NllPicksTargetLogProbability) {
  Tensor lp = ops::softmax(from_vector(std::vector<double>{1, 2, 3, 0, -1, 4}, {2, 3}), 1, true);
  Tensor target = from_vector(std::vector<int64_t>{2, 0});
  std::vector<double> lpv = lp.to_vector<double>();
  std::vector<double> loss = ops::nll(lp, target).to_vector<double>();
  EXPECT_DOUBLE_EQ(loss[0], -lpv[2]);
  EXPECT_DOUBLE_EQ(loss[1], -lpv[3]);
  std::string msg = error_of([&] { ops::nll(lp, from_vector(std::vector<int64_t>{3, 0})); });
  EXPECT_CONTAINS(msg, "nll_loss");
  EXPECT_CONTAINS(msg, "3");
}

TEST(Indexing, IndexSelectAndIndexAdd) {
  Tensor t = ops::reshape(arange(12, DType::Float64), {4, 3});
  Tensor idx = from_vector(std::vector<int64_t>{3, 0, 3});
  EXPECT_EQ(ops::index_select(t, 0, idx).to_vector<double>(), (std::vector<double>{9, 10, 11, 0, 1, 2, 9, 10, 11}));
  EXPECT_EQ(ops::index_select(t, 1, from_vector(std::vector<int64_t>{2, 0})).to_vector<double>(),
            (std::vector<double>{2, 0, 5, 3, 8, 6, 11, 9}));
  Tensor added = ops::index_add({4, 3}, idx, ops::index_select(t, 0, idx));
  EXPECT_EQ(added.to_vector<double>(), (std::vector<double>{0, 1, 2, 0, 0, 0, 0, 0, 0, 18, 20, 22}));
  std::string msg = error_of([&] { ops::index_select(t, 0, from_vector(std::vector<int64_t>{4})); });
  EXPECT_CONTAINS(msg, "index_select");
  EXPECT_CONTAINS(msg, "4");
}

// ---- errors name the op and the shapes ----

TEST(OpErrors, MatmulInnerMismatch) {
  std::string msg = error_of([] { ops::matmul(zeros({2, 3}), zeros({4, 5})); });
  EXPECT_CONTAINS(msg, "matmul");
  EXPECT_CONTAINS(msg, "[2, 3]");
  EXPECT_CONTAINS(msg, "[4, 5]");
  msg = error_of([] { ops::matmul(zeros({2, 2, 3}), zeros({3, 3, 4})); });
  EXPECT_CONTAINS(msg, "matmul");
  EXPECT_CONTAINS(msg, "[2, 2, 3]");
  EXPECT_CONTAINS(msg, "[3, 3, 4]");
  msg = error_of([] { ops::linear(zeros({2, 3}), zeros({4, 5}), Tensor()); });
  EXPECT_CONTAINS(msg, "linear");
  EXPECT_CONTAINS(msg, "[2, 3]");
  EXPECT_CONTAINS(msg, "[4, 5]");
}

TEST(OpErrors, BroadcastFailure) {
  std::string msg = error_of([] { ops::binary(ops::BinaryOp::Add, zeros({2, 3}), zeros({4})); });
  EXPECT_CONTAINS(msg, "add");
  EXPECT_CONTAINS(msg, "[2, 3]");
  EXPECT_CONTAINS(msg, "[4]");
  msg = error_of([] { ops::binary(ops::BinaryOp::Mul, zeros({3, 1, 2}), zeros({4, 3})); });
  EXPECT_CONTAINS(msg, "mul");
  EXPECT_CONTAINS(msg, "[3, 1, 2]");
  EXPECT_CONTAINS(msg, "[4, 3]");
  msg = error_of([] { ops::broadcast_shapes({5}, {6}, "myop"); });
  EXPECT_CONTAINS(msg, "myop");
}

TEST(OpErrors, DtypeMismatch) {
  std::string msg = error_of([] { ops::binary(ops::BinaryOp::Add, zeros({2}), zeros({2}, DType::Float64)); });
  EXPECT_CONTAINS(msg, "add");
  EXPECT_CONTAINS(msg, "float32");
  EXPECT_CONTAINS(msg, "float64");
  EXPECT_CONTAINS(msg, "[2]");
  msg = error_of([] { ops::matmul(zeros({2, 2}), zeros({2, 2}, DType::Float64)); });
  EXPECT_CONTAINS(msg, "matmul");
  EXPECT_CONTAINS(msg, "float32");
  EXPECT_CONTAINS(msg, "float64");
}

TEST(OpErrors, IntegerIntoFloatingOp) {
  Tensor i = from_vector(std::vector<int64_t>{1, 2, 3});
  std::string msg = error_of([&] { ops::unary(ops::UnaryOp::Exp, i); });
  EXPECT_CONTAINS(msg, "exp");
  EXPECT_CONTAINS(msg, "int64");
  EXPECT_CONTAINS(msg, "[3]");
  msg = error_of([&] { ops::softmax(i, 0); });
  EXPECT_CONTAINS(msg, "softmax");
  EXPECT_CONTAINS(msg, "int64");
  msg = error_of([&] { ops::mean(i); });
  EXPECT_CONTAINS(msg, "mean");
  EXPECT_CONTAINS(msg, "int64");
}

TEST(OpErrors, UndefinedAndOutOfRange) {
  EXPECT_THROW(ops::unary(ops::UnaryOp::Exp, Tensor()), Error);
  EXPECT_THROW(ops::binary(ops::BinaryOp::Add, Tensor(), zeros({1})), Error);
  std::string msg = error_of([] { ops::softmax(zeros({2, 3}), 2); });
  EXPECT_CONTAINS(msg, "softmax");
  EXPECT_CONTAINS(msg, "dim 2");
}
