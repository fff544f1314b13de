// Optimizers against torch.optim's documented update rules, written out here by hand, for three steps with
// hand-set parameters and gradients; zero_grad; learning-rate schedules; gradient clipping; option validation.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;
using braid::test::optimizer_values;

namespace {

const std::vector<double> kP0 = {1.0, -2.0, 3.0, 0.5};
// A different gradient at each of the three steps.
const std::vector<std::vector<double>> kGrads = {{0.5, -1.0, 2.0, 0.0}, {-0.3, 0.7, 1.1, -0.25}, {0.2, 0.2, -0.9, 0.4}};

Tensor param(DType dt = DType::Float64) { return ops::to_dtype(from_vector(kP0, {2, 2}), dt).requires_grad_(true); }

void set_grad(const Tensor& p, const std::vector<double>& g) {
  p.set_grad(ops::to_dtype(from_vector(g, {2, 2}), p.dtype()));
}

void expect_near(const std::vector<double>& got, const std::vector<double>& want, double tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], want[i], tol) << what << " element " << i;
}

struct SgdCase {
  const char* name;
  optim::SGDOptions o;
};
void PrintTo(const SgdCase& c, std::ostream* os) { *os << c.name; }

// torch.optim.SGD, as documented:
//   g <- g + weight_decay * p
//   if momentum != 0: b <- g at the first step, else momentum * b + (1 - dampening) * g
//                     g <- g + momentum * b if nesterov, else b
//   p <- p - lr * g
std::vector<std::vector<double>> sgd_reference(const optim::SGDOptions& o, std::vector<double>* final_buf) {
  std::vector<double> p = kP0, b(p.size(), 0.0);
  std::vector<std::vector<double>> history;
  for (size_t t = 0; t < kGrads.size(); ++t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kGrads[t][i];
      if (o.weight_decay != 0) g += o.weight_decay * p[i];
      if (o.momentum != 0) {
        b[i] = t == 0 ? g : o.momentum * b[i] + (1 - o.dampening) * g;
        g = o.nesterov ? g + o.momentum * b[i] : b[i];
      }
      p[i] -= o.lr * g;
    }
    history.push_back(p);
  }
  if (final_buf) *final_buf = b;
  return history;
}

// torch.optim.Adam / AdamW, as documented (t counts from 1):
//   Adam:  g <- g + weight_decay * p          AdamW: p <- p * (1 - lr * weight_decay)
//   m <- beta1 m + (1 - beta1) g;  v <- beta2 v + (1 - beta2) g^2
//   m_hat = m / (1 - beta1^t);  v_hat = v / (1 - beta2^t)
//   p <- p - lr * m_hat / (sqrt(v_hat) + eps)
std::vector<std::vector<double>> adam_reference(double lr, double b1, double b2, double eps, double wd, bool adamw) {
  std::vector<double> p = kP0, m(p.size(), 0.0), v(p.size(), 0.0);
  std::vector<std::vector<double>> history;
  for (size_t t = 1; t <= kGrads.size(); ++t) {
    for (size_t i = 0; i < p.size(); ++i) {
      double g = kGrads[t - 1][i];
      if (adamw)
        p[i] *= 1 - lr * wd;
      else
        g += wd * p[i];
      m[i] = b1 * m[i] + (1 - b1) * g;
      v[i] = b2 * v[i] + (1 - b2) * g * g;
      double m_hat = m[i] / (1 - std::pow(b1, double(t)));
      double v_hat = v[i] / (1 - std::pow(b2, double(t)));
      p[i] -= lr * m_hat / (std::sqrt(v_hat) + eps);
    }
    history.push_back(p);
  }
  return history;
}

}  // namespace

// ---- SGD ----

class SgdTest : public ::testing::TestWithParam<SgdCase> {};

TEST_P(SgdTest, MatchesTheDocumentedUpdateForThreeSteps) {
  const SgdCase& c = GetParam();
  std::vector<double> want_buf;
  auto want = sgd_reference(c.o, &want_buf);
  for (DType dt : {DType::Float64, DType::Float32}) {
    SCOPED_TRACE(std::string(dtype_name(dt)));
    double tol = dt == DType::Float64 ? 1e-14 : 2e-6;
    Tensor p = param(dt);
    Tensor untouched = param(dt);  // never gets a gradient: SGD must skip it
    optim::SGD opt({p, untouched}, c.o);
    EXPECT_DOUBLE_EQ(opt.lr(), c.o.lr);
    for (size_t t = 0; t < kGrads.size(); ++t) {
      set_grad(p, kGrads[t]);
      opt.step();
      expect_near(p.to_vector<double>(), want[t], tol, std::string(c.name) + " step " + std::to_string(t + 1));
    }
    EXPECT_EQ(untouched.to_vector<double>(), param(dt).to_vector<double>());
    EXPECT_TRUE(p.is_leaf());
    EXPECT_TRUE(p.requires_grad());
    if (c.o.momentum != 0) {
      ASSERT_TRUE(opt.momentum_buffer(0).defined());
      expect_near(opt.momentum_buffer(0).to_vector<double>(), want_buf, tol, "momentum buffer");
      EXPECT_FALSE(opt.momentum_buffer(1).defined());
    } else {
      EXPECT_FALSE(opt.momentum_buffer(0).defined());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Variants, SgdTest,
    ::testing::Values(SgdCase{"plain", {.lr = 0.1}}, SgdCase{"momentum", {.lr = 0.1, .momentum = 0.9}},
                      SgdCase{"dampening", {.lr = 0.05, .momentum = 0.9, .dampening = 0.3}},
                      SgdCase{"nesterov", {.lr = 0.1, .momentum = 0.8, .nesterov = true}},
                      SgdCase{"weight_decay", {.lr = 0.1, .weight_decay = 0.01}},
                      SgdCase{"momentum_weight_decay", {.lr = 0.2, .momentum = 0.5, .weight_decay = 0.1}},
                      SgdCase{"all", {.lr = 0.3, .momentum = 0.7, .weight_decay = 0.05, .nesterov = true}}),
    [](const auto& info) { return std::string(info.param.name); });

TEST(Sgd, PlainStepByHand) {
  // One update spelled out in numbers: p - lr * g.
  Tensor p = from_vector(std::vector<double>{1, 2}).requires_grad_(true);
  optim::SGD opt({p}, {.lr = 0.5});
  p.set_grad(from_vector(std::vector<double>{0.2, -4}));
  opt.step();
  EXPECT_EQ(p.to_vector<double>(), (std::vector<double>{0.9, 4}));
}

TEST(Sgd, NonContiguousGradientIsReadInLogicalOrder) {
  Tensor p = from_vector(std::vector<double>{0, 0, 0, 0}, {2, 2}).requires_grad_(true);
  optim::SGD opt({p}, {.lr = 1});
  p.set_grad(ops::transpose(from_vector(std::vector<double>{1, 2, 3, 4}, {2, 2}), 0, 1));  // [[1, 3], [2, 4]]
  opt.step();
  EXPECT_EQ(p.to_vector<double>(), (std::vector<double>{-1, -3, -2, -4}));
}

TEST(Sgd, TrainsALinearModelAfterBackward) {
  // End to end: the gradients come from backward and the loss goes down.
  manual_seed(3);
  nn::Linear model(3, 1);
  Tensor x = randn({32, 3}), w_true = from_vector(std::vector<float>{1, -2, 0.5}, {3, 1});
  Tensor y = matmul(x, w_true);
  optim::SGD opt(model->parameters(), {.lr = 0.1, .momentum = 0.9});
  float first = 0, last = 0;
  for (int i = 0; i < 60; ++i) {
    opt.zero_grad();
    Tensor loss = nn::mse_loss(model(x), y);
    loss.backward();
    opt.step();
    if (i == 0) first = loss.item<float>();
    last = loss.item<float>();
  }
  EXPECT_LT(last, first * 1e-2);
}

// ---- Adam / AdamW ----

TEST(Adam, MatchesTheDocumentedUpdateForThreeSteps) {
  struct Case {
    double lr, b1, b2, eps, wd;
  };
  for (Case c : {Case{1e-2, 0.9, 0.999, 1e-8, 0}, Case{0.1, 0.8, 0.99, 1e-8, 0.1}, Case{0.05, 0.5, 0.9, 0.1, 0.02}}) {
    SCOPED_TRACE("lr " + std::to_string(c.lr) + " eps " + std::to_string(c.eps) + " wd " + std::to_string(c.wd));
    auto want = adam_reference(c.lr, c.b1, c.b2, c.eps, c.wd, false);
    Tensor p = param();
    optim::Adam opt({p}, {.lr = c.lr, .beta1 = c.b1, .beta2 = c.b2, .eps = c.eps, .weight_decay = c.wd});
    for (size_t t = 0; t < kGrads.size(); ++t) {
      set_grad(p, kGrads[t]);
      opt.step();
      EXPECT_EQ(opt.step_count(), int64_t(t + 1));
      expect_near(p.to_vector<double>(), want[t], 1e-13, "Adam step " + std::to_string(t + 1));
    }
  }
}

TEST(Adam, BiasCorrectionCountsEachParameterSteps) {
  // torch.optim keeps the step count per parameter: one that first gets a gradient at the second step starts its
  // bias correction at t = 1 there.
  Tensor early = param(), late = param();
  optim::Adam opt({early, late}, {.lr = 0.1, .beta1 = 0.8, .beta2 = 0.9});
  set_grad(early, kGrads[0]);
  opt.step();
  EXPECT_EQ(late.to_vector<double>(), kP0);
  for (size_t t = 1; t < kGrads.size(); ++t) {
    set_grad(early, kGrads[t]);
    set_grad(late, kGrads[t - 1]);  // late sees the gradient sequence one step behind
    opt.step();
  }
  EXPECT_EQ(opt.step_count(), 3);
  auto want = adam_reference(0.1, 0.8, 0.9, 1e-8, 0, false);
  expect_near(early.to_vector<double>(), want[2], 1e-13, "early parameter after 3 steps");
  expect_near(late.to_vector<double>(), want[1], 1e-13, "late parameter after its 2 steps");
}

TEST(Adam, FirstStepMovesEachCoordinateByAboutLr) {
  // With bias correction, the first Adam step is lr * g / (|g| + eps): sign(g) * lr.
  Tensor p = from_vector(std::vector<double>{1, 1, 1}).requires_grad_(true);
  optim::Adam opt({p}, {.lr = 0.01});
  p.set_grad(from_vector(std::vector<double>{100, -0.001, 0}));
  opt.step();
  std::vector<double> v = p.to_vector<double>();
  EXPECT_NEAR(v[0], 0.99, 1e-9);
  EXPECT_NEAR(v[1], 1.01, 1e-7);
  EXPECT_EQ(v[2], 1.0);
}

TEST(AdamW, MatchesTheDocumentedUpdateForThreeSteps) {
  struct Case {
    double lr, b1, b2, eps, wd;
  };
  for (Case c : {Case{1e-2, 0.9, 0.999, 1e-8, 1e-2}, Case{0.1, 0.8, 0.99, 1e-8, 0.5}, Case{0.05, 0.5, 0.9, 0.1, 0}}) {
    SCOPED_TRACE("lr " + std::to_string(c.lr) + " eps " + std::to_string(c.eps) + " wd " + std::to_string(c.wd));
    auto want = adam_reference(c.lr, c.b1, c.b2, c.eps, c.wd, true);
    for (DType dt : {DType::Float64, DType::Float32}) {
      Tensor p = param(dt);
      optim::AdamW opt({p}, {.lr = c.lr, .beta1 = c.b1, .beta2 = c.b2, .eps = c.eps, .weight_decay = c.wd});
      for (size_t t = 0; t < kGrads.size(); ++t) {
        set_grad(p, kGrads[t]);
        opt.step();
        expect_near(p.to_vector<double>(), want[t], dt == DType::Float64 ? 1e-13 : 2e-6,
                    std::string("AdamW ") + std::string(dtype_name(dt)) + " step " + std::to_string(t + 1));
      }
    }
  }
  // Decoupled decay differs from Adam's L2 decay.
  Tensor a = param(), b = param();
  optim::Adam adam({a}, {.lr = 0.1, .weight_decay = 0.5});
  optim::AdamW adamw({b}, {.lr = 0.1, .weight_decay = 0.5});
  set_grad(a, kGrads[1]);
  set_grad(b, kGrads[1]);
  adam.step();
  adamw.step();
  EXPECT_FALSE(ops::allclose(a, b, 1e-6, 1e-9));
  // AdamW's default weight decay is 1e-2.
  EXPECT_DOUBLE_EQ(optim::AdamW({param()}).options().weight_decay, 1e-2);
  EXPECT_DOUBLE_EQ(optim::Adam({param()}).options().weight_decay, 0.0);
}

// ---- zero_grad ----

TEST(Optimizer, ZeroGrad) {
  Tensor p = param(), q = param();
  optim::SGD opt({p, q}, {.lr = 0.1});
  set_grad(p, kGrads[0]);
  opt.zero_grad();  // to undefined, as PyTorch 2
  EXPECT_FALSE(p.grad().defined());
  EXPECT_FALSE(q.grad().defined());

  set_grad(p, kGrads[0]);
  Tensor g = p.grad();
  opt.zero_grad(/*set_to_none=*/false);
  ASSERT_TRUE(p.grad().defined());
  EXPECT_TRUE(p.grad().same(g));  // zeroed in place
  for (double v : p.grad().to_vector<double>()) EXPECT_EQ(v, 0.0);
  EXPECT_FALSE(q.grad().defined());
  // A step after zero_grad(set_to_none) changes nothing.
  opt.zero_grad();
  opt.step();
  EXPECT_EQ(p.to_vector<double>(), kP0);
}

// ---- learning-rate schedules ----

TEST(LRScheduler, StepLR) {
  Tensor p = param();
  optim::SGD opt({p}, {.lr = 0.1});
  optim::StepLR sched(opt, /*step_size=*/2, /*gamma=*/0.5);
  EXPECT_DOUBLE_EQ(opt.lr(), 0.1);
  const double want[] = {0.1, 0.05, 0.05, 0.025, 0.025, 0.0125, 0.0125};
  for (int k = 1; k <= 7; ++k) {
    sched.step();
    EXPECT_EQ(sched.last_epoch(), k);
    EXPECT_NEAR(opt.lr(), want[k - 1], 1e-15) << "after " << k << " steps";
  }
  // The optimizer uses the scheduled rate.
  set_grad(p, {1, 1, 1, 1});
  opt.step();
  expect_near(p.to_vector<double>(), {1 - 0.0125, -2 - 0.0125, 3 - 0.0125, 0.5 - 0.0125}, 1e-15, "step with lr");
}

TEST(LRScheduler, CosineAnnealingLR) {
  Tensor p = param();
  optim::Adam opt({p}, {.lr = 0.1});
  const double eta_min = 0.01, base = 0.1;
  const int64_t t_max = 4;
  optim::CosineAnnealingLR sched(opt, t_max, eta_min);
  const double pi = std::acos(-1.0);
  for (int k = 1; k <= 6; ++k) {
    sched.step();
    double want = eta_min + (base - eta_min) * (1 + std::cos(pi * k / double(t_max))) / 2;
    EXPECT_NEAR(opt.lr(), want, 1e-15) << "after " << k << " steps";
  }
  // Spelled out: halfway is the midpoint, the end is eta_min.
  optim::Adam opt2({param()}, {.lr = 1.0});
  optim::CosineAnnealingLR s2(opt2, 10, 0.0);
  for (int k = 0; k < 5; ++k) s2.step();
  EXPECT_NEAR(opt2.lr(), 0.5, 1e-15);
  for (int k = 0; k < 5; ++k) s2.step();
  EXPECT_NEAR(opt2.lr(), 0.0, 1e-15);
}

// ---- gradient clipping ----

TEST(ClipGradNorm, ReturnsTheNormAndScalesToMaxNorm) {
  Tensor a = from_vector(std::vector<double>{0, 0}).requires_grad_(true);
  Tensor b = from_vector(std::vector<double>{0}).requires_grad_(true);
  Tensor none = from_vector(std::vector<double>{0}).requires_grad_(true);  // no gradient: ignored
  a.set_grad(from_vector(std::vector<double>{3, 4}));
  b.set_grad(from_vector(std::vector<double>{12}));
  double norm = optim::clip_grad_norm_({a, b, none}, 6.5);
  EXPECT_NEAR(norm, 13.0, 1e-12);
  double scale = 6.5 / (13.0 + 1e-6);  // torch's clip coefficient
  expect_near(a.grad().to_vector<double>(), {3 * scale, 4 * scale}, 1e-12, "a");
  expect_near(b.grad().to_vector<double>(), {12 * scale}, 1e-12, "b");
  double after = std::sqrt(std::pow(a.grad().to_vector<double>()[0], 2) + std::pow(a.grad().to_vector<double>()[1], 2) +
                           std::pow(b.grad().to_vector<double>()[0], 2));
  EXPECT_NEAR(after, 6.5, 1e-6);
  EXPECT_FALSE(none.grad().defined());

  // Below the limit: reported, not changed.
  a.set_grad(from_vector(std::vector<double>{3, 4}));
  b.set_grad(from_vector(std::vector<double>{12}));
  EXPECT_NEAR(optim::clip_grad_norm_({a, b}, 20), 13.0, 1e-12);
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{3, 4}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{12}));

  // The infinity norm is the largest magnitude.
  a.set_grad(from_vector(std::vector<double>{3, -14}));
  EXPECT_NEAR(optim::clip_grad_norm_({a, b}, 7, INFINITY), 14.0, 1e-12);
  expect_near(a.grad().to_vector<double>(), {3 * 7 / (14 + 1e-6), -14 * 7 / (14 + 1e-6)}, 1e-12, "inf norm a");
  expect_near(b.grad().to_vector<double>(), {12 * 7 / (14 + 1e-6)}, 1e-12, "inf norm b");

  // Float32 gradients; a 1-norm.
  Tensor c = zeros({3}).requires_grad_(true);
  c.set_grad(from_vector(std::vector<float>{1, -2, 3}));
  EXPECT_NEAR(optim::clip_grad_norm_({c}, 3, 1.0), 6.0, 1e-6);
  expect_near(c.grad().to_vector<double>(), {0.5, -1, 1.5}, 1e-6, "1-norm");

  EXPECT_THROW(optim::clip_grad_norm_({a}, -1), Error);
  EXPECT_THROW(optim::clip_grad_norm_({a}, 1, 0), Error);
}

// ---- invalid options ----

TEST(OptimizerOptions, InvalidOptionsThrow) {
  Tensor p = param();
  std::string msg = error_of([&] { optim::SGD({p}, {.lr = -0.1}); });
  EXPECT_CONTAINS(msg, "learning rate");
  EXPECT_CONTAINS(msg, "-0.1");
  EXPECT_THROW(optim::SGD({p}, {.lr = NAN}), Error);
  EXPECT_THROW(optim::SGD({p}, {.lr = 0.1, .momentum = -0.5}), Error);
  EXPECT_THROW(optim::SGD({p}, {.lr = 0.1, .weight_decay = -1}), Error);
  msg = error_of([&] { optim::SGD({p}, {.lr = 0.1, .nesterov = true}); });
  EXPECT_CONTAINS(msg, "Nesterov");
  EXPECT_THROW(optim::SGD({p}, {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .nesterov = true}), Error);

  msg = error_of([&] { optim::Adam({p}, {.beta1 = 1.0}); });
  EXPECT_CONTAINS(msg, "Adam");
  EXPECT_CONTAINS(msg, "betas");
  EXPECT_THROW(optim::Adam({p}, {.beta2 = -0.1}), Error);
  EXPECT_THROW(optim::Adam({p}, {.eps = -1e-8}), Error);
  EXPECT_THROW(optim::Adam({p}, {.weight_decay = -0.1}), Error);
  EXPECT_THROW(optim::Adam({p}, {.lr = -1}), Error);
  msg = error_of([&] { optim::AdamW({p}, {.beta2 = 1.5}); });
  EXPECT_CONTAINS(msg, "AdamW");

  optim::SGD ok({p}, {.lr = 0.1});
  EXPECT_THROW(ok.set_lr(-1), Error);
  EXPECT_THROW(ok.set_lr(INFINITY), Error);
  EXPECT_DOUBLE_EQ(ok.lr(), 0.1);
  EXPECT_THROW(optim::StepLR(ok, 0), Error);
  EXPECT_THROW(optim::CosineAnnealingLR(ok, 0), Error);

  // Parameters must be floating-point leaves that require grad.
  Tensor frozen = from_vector(std::vector<double>{1});
  msg = error_of([&] { optim::SGD({p, frozen}, {}); });
  EXPECT_CONTAINS(msg, "parameter 1");
  Tensor computed = p * 2.0;
  EXPECT_THROW(optim::Adam({computed}), Error);
  EXPECT_THROW(optim::SGD({Tensor()}), Error);
}

// ---- state_dict / load_state_dict ----

namespace {

// Two parameters of different shapes, so a state moved onto the wrong one is caught; only the first gets gradients
// unless `both`.
struct TwoParams {
  Tensor a = param();
  Tensor b = from_vector(std::vector<double>{0.25, -0.75, 1.5}).requires_grad_(true);
  std::vector<Tensor> list() const { return {a, b}; }
  void grads(size_t t, bool both = true) {
    set_grad(a, kGrads[t]);
    if (both) b.set_grad(from_vector(std::vector<double>{kGrads[t][0], kGrads[t][1], kGrads[t][2]}));
  }
};

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST(OptimizerStateDict, SgdHoldsMomentumBuffersByParameterIndex) {
  TwoParams p;
  optim::SGD opt(p.list(), {.lr = 0.1, .momentum = 0.9, .dampening = 0.1, .weight_decay = 0.01});
  EXPECT_TRUE(opt.state_dict().state.empty()) << "no state before the first step";
  p.grads(0, /*both=*/false);
  opt.step();
  optim::OptimizerState s = opt.state_dict();
  ASSERT_EQ(s.state.size(), 1u) << "parameter 1 has taken no step";
  ASSERT_EQ(s.state.count(0), 1u);
  ASSERT_EQ(s.state[0].size(), 1u);
  EXPECT_TRUE(s.state[0].at("momentum_buffer").same(opt.momentum_buffer(0))) << "shared, as PyTorch's";
  // The first buffer is the gradient plus weight decay.
  std::vector<double> want;
  for (size_t i = 0; i < kP0.size(); ++i) want.push_back(kGrads[0][i] + 0.01 * kP0[i]);
  expect_near(values(s.state[0].at("momentum_buffer")), want, 1e-15, "momentum_buffer");
  ASSERT_EQ(s.param_groups.size(), 1u);
  EXPECT_EQ(s.param_groups[0].params, (std::vector<int64_t>{0, 1}));
  EXPECT_EQ(s.param_groups[0].options,
            (std::map<std::string, double>{
                {"lr", 0.1}, {"momentum", 0.9}, {"dampening", 0.1}, {"weight_decay", 0.01}, {"nesterov", 0}}));
  opt.set_lr(0.02);
  EXPECT_EQ(opt.state_dict().param_groups[0].options.at("lr"), 0.02) << "the rate in use, as a scheduler set it";
}

TEST(OptimizerStateDict, AdamHoldsMomentsAndEachParameterSteps) {
  TwoParams p;
  optim::Adam opt(p.list(), {.lr = 0.1, .beta1 = 0.8, .beta2 = 0.9, .eps = 1e-6, .weight_decay = 0.5});
  p.grads(0, /*both=*/false);
  opt.step();
  p.grads(1);
  opt.step();
  optim::OptimizerState s = opt.state_dict();
  ASSERT_EQ(s.state.size(), 2u);
  for (int64_t i : {0, 1}) {
    ASSERT_EQ(s.state[i].size(), 3u);
    const Tensor& step = s.state[i].at("step");
    EXPECT_EQ(step.dtype(), DType::Int64);
    EXPECT_EQ(step.dim(), 0);
    EXPECT_EQ(step.item<int64_t>(), i == 0 ? 2 : 1);
  }
  EXPECT_EQ(s.state[1].at("exp_avg").shape(), (Shape{3}));
  // m after two steps of the first parameter, with L2 decay in the gradient: beta1 m1 + (1 - beta1) g2.
  std::vector<double> m(4), v(4), pv = kP0;
  for (size_t t = 0; t < 2; ++t)
    for (size_t i = 0; i < 4; ++i) {
      double g = kGrads[t][i] + 0.5 * pv[i];
      m[i] = 0.8 * m[i] + 0.2 * g;
      v[i] = 0.9 * v[i] + 0.1 * g * g;
      pv[i] -= 0.1 * (m[i] / (1 - std::pow(0.8, double(t + 1)))) /
               (std::sqrt(v[i] / (1 - std::pow(0.9, double(t + 1)))) + 1e-6);
    }
  expect_near(values(s.state[0].at("exp_avg")), m, 1e-12, "exp_avg");
  expect_near(values(s.state[0].at("exp_avg_sq")), v, 1e-12, "exp_avg_sq");
  EXPECT_EQ(s.param_groups[0].options,
            (std::map<std::string, double>{
                {"lr", 0.1}, {"beta1", 0.8}, {"beta2", 0.9}, {"eps", 1e-6}, {"weight_decay", 0.5}}));
  EXPECT_EQ(opt.step_count(), 2);
}

TEST(OptimizerStateDict, LoadingContinuesEveryOptimizerExactly) {
  auto make = [](const std::string& kind, const std::vector<Tensor>& ps,
                 double lr) -> std::unique_ptr<optim::Optimizer> {
    if (kind == "SGD")
      return std::make_unique<optim::SGD>(ps, optim::SGDOptions{.lr = lr, .momentum = 0.9, .nesterov = true});
    if (kind == "Adam") return std::make_unique<optim::Adam>(ps, optim::AdamOptions{.lr = lr, .beta1 = 0.7});
    return std::make_unique<optim::AdamW>(ps, optim::AdamWOptions{.lr = lr, .weight_decay = 0.3});
  };
  for (std::string kind : {"SGD", "Adam", "AdamW"}) {
    SCOPED_TRACE(kind);
    TwoParams p;
    auto opt = make(kind, p.list(), 0.1);
    p.grads(0, /*both=*/false);
    opt->step();
    p.grads(1);
    opt->step();
    opt->set_lr(0.07);  // as a schedule would

    // A fresh optimizer over copies of the parameters, built with another learning rate: the state brings the
    // buffers, the step counts and the rate.
    TwoParams q;
    q.a = ops::clone(p.a).requires_grad_(true);
    q.b = ops::clone(p.b).requires_grad_(true);
    auto resumed = make(kind, q.list(), 0.5);
    resumed->load_state_dict(opt->state_dict());
    EXPECT_EQ(resumed->lr(), 0.07);
    EXPECT_EQ(optimizer_values(*resumed), optimizer_values(*opt));
    // Copies, not shared: the original's next step does not move the loaded buffers.
    auto loaded = optimizer_values(*resumed);
    p.grads(2);
    opt->step();
    EXPECT_EQ(optimizer_values(*resumed), loaded);
    q.grads(2);
    resumed->step();
    EXPECT_EQ(values(q.a), values(p.a));
    EXPECT_EQ(values(q.b), values(p.b));
    EXPECT_EQ(optimizer_values(*resumed), optimizer_values(*opt));
  }
}

TEST(OptimizerStateDict, LoadingAnEmptyStateClearsBuffers) {
  TwoParams p;
  optim::Adam opt(p.list(), {.lr = 0.1});
  optim::OptimizerState fresh = optim::Adam(TwoParams().list(), {.lr = 0.3}).state_dict();
  p.grads(0);
  opt.step();
  opt.load_state_dict(fresh);
  EXPECT_TRUE(opt.state_dict().state.empty());
  EXPECT_EQ(opt.step_count(), 0);
  EXPECT_EQ(opt.lr(), 0.3);
}

TEST(OptimizerStateDict, AcceptsPyTorchFloatStepCounts) {
  // torch.optim writes `step` as a float32 0-d tensor.
  TwoParams p;
  optim::Adam opt(p.list());
  optim::OptimizerState s = opt.state_dict();
  s.state[0] = {{"exp_avg", zeros_like(p.a)}, {"exp_avg_sq", zeros_like(p.a)}, {"step", scalar_tensor(41.0)}};
  opt.load_state_dict(s);
  EXPECT_EQ(opt.step_count(), 41);
  EXPECT_EQ(opt.state_dict().state[0].at("step").item<int64_t>(), 41);
}

TEST(OptimizerStateDict, MismatchesNameTheMisfitAndChangeNothing) {
  TwoParams p;
  optim::Adam opt(p.list(), {.lr = 0.1});
  p.grads(0);
  opt.step();
  const auto before = optimizer_values(opt);
  const optim::OptimizerState good = opt.state_dict();
  auto edited = [&](const std::function<void(optim::OptimizerState&)>& edit) {
    optim::OptimizerState s = good;
    for (auto& [i, state] : s.state)
      for (auto& [k, t] : state) t = ops::clone(t);  // edits must not reach the optimizer's own buffers
    edit(s);
    return s;
  };
  struct Case {
    std::function<void(optim::OptimizerState&)> edit;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {[](auto& s) { s.param_groups[0].params.push_back(2); }, {"Adam::load_state_dict", "holds 3 parameters", "2"}},
      {[](auto& s) { s.param_groups.push_back(s.param_groups[0]); }, {"2 parameter groups"}},
      {[](auto& s) { std::swap(s.param_groups[0].params[0], s.param_groups[0].params[1]); }, {"position 0"}},
      {[](auto& s) {
         s.state[1]["exp_avg"] = zeros({2, 2}, DType::Float64);
       },
       {"parameter 1", "'exp_avg'", "[2, 2]", "[3]"}},
      {[](auto& s) {
         s.state[0]["exp_avg_sq"] = zeros({2, 2}, DType::Float32);
       },
       {"parameter 0", "'exp_avg_sq'", "float32", "float64"}},
      {[](auto& s) { s.state[0].erase("exp_avg"); }, {"parameter 0", "missing 'exp_avg'"}},
      {[](auto& s) {
         s.state[0]["max_exp_avg_sq"] = zeros({2, 2}, DType::Float64);
       },
       {"parameter 0", "unexpected 'max_exp_avg_sq'"}},
      {[](auto& s) { s.state[0].at("step") = scalar_tensor(2.5); }, {"'step'", "whole number"}},
      {[](auto& s) { s.state[0].at("step") = scalar_tensor(-1, DType::Int64); }, {"'step'", "whole number"}},
      {[](auto& s) { s.state[0].at("step") = zeros({2}, DType::Int64); }, {"'step'", "one step count"}},
      {[](auto& s) { s.state[2] = s.state[0]; }, {"parameter 2", "has 2 parameters"}},
      {[](auto& s) { s.state[0].at("exp_avg") = Tensor(); }, {"'exp_avg' is undefined"}},
      {[](auto& s) { s.param_groups[0].options.at("lr") = -1; }, {"learning rate", "-1"}},
      {[](auto& s) { s.param_groups[0].options.at("beta2") = 1; }, {"betas"}},
      {[](auto& s) { s.param_groups[0].options.erase("eps"); }, {"hyper-parameters", "missing 'eps'"}},
      {[](auto& s) { s.param_groups[0].options["momentum"] = 0.9; }, {"unexpected 'momentum'"}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k));
    optim::OptimizerState bad = edited(cases[k].edit);
    expect_error([&] { opt.check_state_dict(bad); }, cases[k].expect);
    expect_error([&] { opt.load_state_dict(bad); }, cases[k].expect);
    EXPECT_EQ(optimizer_values(opt), before);
  }
  // Another optimizer's state: SGD's hyper-parameters and buffers do not fit Adam.
  optim::SGD sgd(p.list(), {.lr = 0.1, .momentum = 0.5});
  p.grads(1);
  sgd.step();
  expect_error([&] { opt.load_state_dict(sgd.state_dict()); },
               {"Adam", "unexpected 'dampening', 'momentum', 'nesterov'", "missing 'beta1', 'beta2', 'eps'"});
  EXPECT_EQ(optimizer_values(opt), before);
}

TEST(LRSchedulerStateDict, RoundTripsAndContinuesTheSchedule) {
  optim::SGD a({param()}, {.lr = 0.4});
  optim::StepLR step_a(a, 2, 0.5);
  for (int k = 0; k < 3; ++k) step_a.step();
  optim::LRSchedulerState s = step_a.state_dict();
  EXPECT_EQ(s.last_epoch, 3);
  EXPECT_EQ(s.base_lrs, std::vector<double>{0.4});
  EXPECT_EQ(s.options, (std::map<std::string, double>{{"step_size", 2}, {"gamma", 0.5}}));

  optim::SGD b({param()}, {.lr = 9});
  optim::StepLR step_b(b, 7, 0.9);
  step_b.load_state_dict(s);
  EXPECT_EQ(step_b.last_epoch(), 3);
  EXPECT_EQ(b.lr(), 9) << "the schedule's state leaves the optimizer's rate to the optimizer's state";
  for (int k = 0; k < 4; ++k) {
    step_a.step();
    step_b.step();
    EXPECT_EQ(b.lr(), a.lr()) << "epoch " << step_a.last_epoch();
  }
  EXPECT_DOUBLE_EQ(b.lr(), 0.4 * 0.125);

  optim::Adam c({param()}, {.lr = 0.2});
  optim::CosineAnnealingLR cos_c(c, 10, 0.01);
  for (int k = 0; k < 4; ++k) cos_c.step();
  optim::Adam d({param()}, {.lr = 0.2});
  optim::CosineAnnealingLR cos_d(d, 3);
  cos_d.load_state_dict(cos_c.state_dict());
  EXPECT_EQ(cos_d.state_dict().options, (std::map<std::string, double>{{"T_max", 10}, {"eta_min", 0.01}}));
  cos_c.step();
  cos_d.step();
  EXPECT_EQ(d.lr(), c.lr());
}

TEST(LRSchedulerStateDict, MismatchesNameTheMisfitAndChangeNothing) {
  optim::SGD opt({param()}, {.lr = 0.4});
  optim::CosineAnnealingLR sched(opt, 10);
  sched.step();
  const optim::LRSchedulerState good = sched.state_dict();
  optim::SGD other({param()}, {.lr = 0.4});
  optim::StepLR step(other, 2);
  struct Case {
    std::function<void(optim::LRSchedulerState&)> edit;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {[](auto& s) { s.base_lrs.push_back(0.1); }, {"CosineAnnealingLR::load_state_dict", "2 parameter groups"}},
      {[](auto& s) { s.last_epoch = -1; }, {"last_epoch", "-1"}},
      {[](auto& s) { s.options.at("T_max") = 0; }, {"t_max must be positive"}},
      {[](auto& s) { s.options.at("T_max") = 2.5; }, {"'T_max'", "whole number"}},
      {[](auto& s) { s.base_lrs[0] = -0.1; }, {"learning rate"}},
      {[&](auto& s) { s = step.state_dict(); }, {"'gamma'", "'step_size'", "'T_max'"}},
  };
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k));
    optim::LRSchedulerState bad = good;
    cases[k].edit(bad);
    expect_error([&] { sched.load_state_dict(bad); }, cases[k].expect);
    optim::LRSchedulerState now = sched.state_dict();
    EXPECT_EQ(now.last_epoch, good.last_epoch);
    EXPECT_EQ(now.base_lrs, good.base_lrs);
    EXPECT_EQ(now.options, good.options);
  }
}
