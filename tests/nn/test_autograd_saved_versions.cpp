// Saved-tensor version checks: a backward whose saved tensor was written in place since the forward throws naming
// its op, while writing a tensor the backward did not save is fine (PyTorch's rule). Every op that saves tensors is
// listed with exactly the tensors it saves.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;
namespace F = braid::nn::functional;

namespace {

Tensor leaf(std::vector<double> v, Shape s = {}) { return from_vector(v, s).requires_grad_(true); }

}  // namespace

TEST(SavedTensorVersions, InPlaceWriteToSavedOutputThrowsNamingTheOp) {
  Tensor x = leaf({0.5, -1, 2});
  Tensor y = exp(x);
  Tensor loss = sum(y);
  ops::mul_(y, 100);
  std::string msg = error_of([&] { loss.backward(); });
  EXPECT_CONTAINS(msg, "a tensor saved for ExpBackward was modified in place (version 1, saved at 0");
  EXPECT_FALSE(x.grad().defined());

  // The same from y itself, with an explicit gradient.
  Tensor y2 = exp(x);
  ops::mul_(y2, 100);
  EXPECT_CONTAINS(error_of([&] { y2.backward(ones_like(y2)); }), "ExpBackward");
  EXPECT_FALSE(x.grad().defined());
}

TEST(SavedTensorVersions, InPlaceWriteThroughAViewIsSeen) {
  Tensor x = leaf({1, 2, 3, 4}, {2, 2});
  Tensor y = exp(x);
  Tensor loss = sum(y);
  ops::add_(ops::select(y, 0, 1), ones({2}, DType::Float64));  // the view shares y's version counter
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "ExpBackward");
}

TEST(SavedTensorVersions, InPlaceWriteToATensorTheBackwardDidNotSaveIsFine) {
  // add saves nothing: changing its input afterwards does not change its gradient.
  Tensor a = leaf({1, 2});
  Tensor b = leaf({3, 4});
  Tensor z = a + b;
  {
    NoGradGuard no_grad;
    ops::add_(a, ones({2}, DType::Float64));
  }
  sum(z).backward();
  EXPECT_EQ(a.grad().to_vector<double>(), (std::vector<double>{1, 1}));
  EXPECT_EQ(b.grad().to_vector<double>(), (std::vector<double>{1, 1}));

  // x * c with c a constant: the backward reads c only, so x may change.
  Tensor x = leaf({1, 2});
  Tensor c = from_vector(std::vector<double>{5, 7});
  Tensor p = x * c;
  {
    NoGradGuard no_grad;
    ops::mul_(x, 3);
  }
  sum(p).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{5, 7}));
  // ... but not c.
  Tensor q = x * c;
  ops::mul_(c, 2);
  EXPECT_CONTAINS(error_of([&] { sum(q).backward(); }), "MulBackward");
}

TEST(SavedTensorVersions, OptimizerStepBetweenForwardAndBackwardIsCaught) {
  nn::Linear fc(3, 2);
  Tensor x = randn({4, 3}).requires_grad_();
  Tensor loss = sum(fc(x));
  optim::SGD sgd(fc->parameters(), {.lr = 0.1});
  for (auto& p : fc->parameters()) p.set_grad(ones_like(p));
  sgd.step();  // updates the weight that LinearBackward saved for x's gradient
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "LinearBackward");
}

namespace {

struct Case {
  std::string op;  // the node's name
  std::function<Tensor(const std::vector<Tensor>&)> f;
  std::vector<Tensor> inputs;
  std::vector<bool> saved;  // per input: the backward reads it
  bool saves_output;
};

std::vector<Case> cases() {
  Generator gen(7);
  auto r = [&](Shape s) { return randn(s, DType::Float64, &gen).requires_grad_(); };
  auto pos = [&](Shape s) {
    NoGradGuard no_grad;
    return affine(abs(randn(s, DType::Float64, &gen)), 1, 0.5).requires_grad_();
  };
  Tensor index = from_vector(std::vector<int64_t>{2, 0, 2});
  Tensor target = from_vector(std::vector<int64_t>{1, 0});
  Tensor constant = randn({2, 3}, DType::Float64, &gen);
  auto one = [](auto fn) { return [fn](const std::vector<Tensor>& in) { return fn(in[0]); }; };
  auto two = [](auto fn) { return [fn](const std::vector<Tensor>& in) { return fn(in[0], in[1]); }; };
  return {
      {"AddBackward", two([](auto a, auto b) { return a + b; }), {r({2, 3}), r({2, 3})}, {false, false}, false},
      {"SubBackward", two([](auto a, auto b) { return a - b; }), {r({2, 3}), r({2, 3})}, {false, false}, false},
      {"MulBackward", two([](auto a, auto b) { return a * b; }), {r({2, 3}), r({2, 3})}, {true, true}, false},
      {"MulBackward", two([](auto a, auto b) { return a * b; }), {r({2, 3}), constant}, {false, true}, false},
      {"DivBackward", two([](auto a, auto b) { return a / b; }), {r({2, 3}), pos({2, 3})}, {true, true}, false},
      {"DivBackward", two([](auto a, auto b) { return a / b; }), {r({2, 3}), constant + 3.0}, {false, true}, false},
      {"PowBackward", two([](auto a, auto b) { return pow(a, b); }), {pos({2, 3}), r({2, 3})}, {true, true}, true},
      {"PowScalarBackward", one([](auto a) { return pow(a, 3.0); }), {r({2, 3})}, {true}, false},
      {"MaximumBackward",
       two([](auto a, auto b) { return maximum(a, b); }),
       {r({2, 3}), r({2, 3})},
       {true, true},
       false},
      {"NegBackward", one([](auto a) { return -a; }), {r({2, 3})}, {false}, false},
      {"ExpBackward", one([](auto a) { return exp(a); }), {r({2, 3})}, {false}, true},
      {"LogBackward", one([](auto a) { return log(a); }), {pos({2, 3})}, {true}, false},
      {"SqrtBackward", one([](auto a) { return sqrt(a); }), {pos({2, 3})}, {false}, true},
      {"AbsBackward", one([](auto a) { return abs(a); }), {r({2, 3})}, {true}, false},
      {"ClampBackward", one([](auto a) { return clamp(a, -0.5, 0.5); }), {r({2, 3})}, {true}, false},
      {"ReluBackward", one([](auto a) { return relu(a); }), {r({2, 3})}, {false}, true},
      {"GeluBackward", one([](auto a) { return gelu(a); }), {r({2, 3})}, {true}, false},
      {"TanhBackward", one([](auto a) { return braid::tanh(a); }), {r({2, 3})}, {false}, true},
      {"SigmoidBackward", one([](auto a) { return sigmoid(a); }), {r({2, 3})}, {false}, true},
      {"AffineBackward", one([](auto a) { return a * 3.0 + 1.0; }), {r({2, 3})}, {false}, false},
      {"SumBackward", one([](auto a) { return sum(a, {1}); }), {r({2, 3})}, {false}, false},
      {"MeanBackward", one([](auto a) { return mean(a, {0}); }), {r({2, 3})}, {false}, false},
      {"AmaxBackward", one([](auto a) { return amax(a, {1}); }), {r({2, 3})}, {true}, true},
      {"TransposeBackward", one([](auto a) { return transpose(a, 0, 1); }), {r({2, 3})}, {false}, false},
      {"IndexSelectBackward", one([index](auto a) { return index_select(a, 0, index); }), {r({3, 2})}, {false}, false},
      {"MatmulBackward", two([](auto a, auto b) { return matmul(a, b); }), {r({2, 3}), r({3, 4})}, {true, true}, false},
      {"LinearBackward",
       [](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2]); },
       {r({2, 3}), r({4, 3}), r({4})},
       {true, true, false},
       false},
      {"SoftmaxBackward", one([](auto a) { return softmax(a, 1); }), {r({2, 3})}, {false}, true},
      {"LogSoftmaxBackward", one([](auto a) { return log_softmax(a, 1); }), {r({2, 3})}, {false}, true},
      {"NllLossBackward", one([target](auto a) { return F::nll_loss(a, target); }), {r({2, 3})}, {true}, false},
      {"CrossEntropyBackward",
       one([target](auto a) { return F::cross_entropy(a, target); }),
       {r({2, 3})},
       {false},
       false},
  };
}

// Backward from out with the tensor `modified` bumped after the forward: the error, or "" when it succeeds.
std::string backward_after_bump(const Case& c, const std::function<Tensor(const Tensor& out)>& modified) {
  Tensor out = c.f(c.inputs);
  EXPECT_EQ(out.grad_fn()->name, c.op);
  modified(out).bump_version();
  try {
    out.backward(ones_like(out));
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

}  // namespace

TEST(SavedTensorVersions, EveryOpChecksExactlyTheTensorsItSaved) {
  for (const Case& c : cases()) {
    for (size_t i = 0; i < c.inputs.size(); ++i) {
      SCOPED_TRACE(c.op + ", input " + std::to_string(i));
      std::string msg = backward_after_bump(c, [&](const Tensor&) { return c.inputs[i]; });
      if (c.saved[i])
        EXPECT_CONTAINS(msg, "a tensor saved for " + c.op + " was modified in place");
      else
        EXPECT_EQ(msg, "");
    }
    SCOPED_TRACE(c.op + ", output");
    std::string msg = backward_after_bump(c, [](const Tensor& out) { return out; });
    if (c.saves_output)
      EXPECT_CONTAINS(msg, "a tensor saved for " + c.op + " was modified in place");
    else
      EXPECT_EQ(msg, "");
  }
}

TEST(SavedTensorVersions, IndexSelectChecksItsIndex) {
  Tensor table = leaf({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor index = from_vector(std::vector<int64_t>{2, 0});
  Tensor out = index_select(table, 0, index);
  ops::fill_(index, 1);
  EXPECT_CONTAINS(error_of([&] { sum(out).backward(); }), "IndexSelectBackward");
}

TEST(SavedTensorVersions, RetainedGraphChecksAgainOnEachBackward) {
  Tensor x = leaf({1, 2});
  Tensor y = exp(x);
  Tensor loss = sum(y);
  loss.backward(Tensor(), /*retain_graph=*/true);
  y.bump_version();
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "ExpBackward");
}
