// autograd::grad (gradients with respect to chosen tensors, leaf or not, touching no .grad and running only the
// part of the graph it needs) and autograd::backward over several roots in one pass. Checked against central
// differences in float64 and against separate single-root passes.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;

namespace {

Tensor leaf(std::vector<double> v, Shape s = {}) { return from_vector(v, s).requires_grad_(true); }

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

// Central differences of the scalar f at x, element by element (float64).
std::vector<double> numeric_grad(const std::function<Tensor(const Tensor&)>& f, const Tensor& x) {
  NoGradGuard no_grad;
  const double eps = 1e-6;
  std::vector<double> v = values(x), out(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    std::vector<double> plus = v, minus = v;
    plus[i] += eps;
    minus[i] -= eps;
    double fp = f(from_vector(plus, x.shape())).item<double>();
    double fm = f(from_vector(minus, x.shape())).item<double>();
    out[i] = (fp - fm) / (2 * eps);
  }
  return out;
}

void expect_close(const std::vector<double>& actual, const std::vector<double>& expected, double tol = 1e-6) {
  ASSERT_EQ(actual.size(), expected.size());
  for (size_t i = 0; i < actual.size(); ++i)
    EXPECT_NEAR(actual[i], expected[i], tol * (1 + std::abs(expected[i]))) << "element " << i;
}

// An identity op that counts how often its backward runs.
Tensor counted(const Tensor& a, int& runs) {
  Tensor out = ops::clone(a);
  if (!autograd::any_requires_grad({a})) return out;
  return autograd::record("CountedBackward", out, {a}, [&runs](const Tensor& g) {
    ++runs;
    return std::vector<Tensor>{g};
  });
}

}  // namespace

TEST(AutogradGrad, NonLeafAndLeafInputsMatchFiniteDifferences) {
  manual_seed(11);
  Tensor x = randn({3, 4}, DType::Float64).requires_grad_();
  Tensor w = randn({4, 5}, DType::Float64).requires_grad_();
  auto head = [](const Tensor& h) { return sum(braid::tanh(h) * h + exp(h * 0.1)); };
  Tensor h = matmul(x, w);
  Tensor loss = head(h);
  std::vector<Tensor> g = autograd::grad({loss}, {h, x, w});
  ASSERT_EQ(g.size(), 3u);
  expect_close(values(g[0]), numeric_grad(head, h.detach()));
  Tensor wd = w.detach(), xd = x.detach();
  expect_close(values(g[1]), numeric_grad([&](const Tensor& xv) { return head(matmul(xv, wd)); }, xd));
  expect_close(values(g[2]), numeric_grad([&](const Tensor& wv) { return head(matmul(xd, wv)); }, wd));
  // Nothing was accumulated anywhere.
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(w.grad().defined());
  EXPECT_FALSE(h.grad().defined());
}

TEST(AutogradGrad, WeightedOutputsMatchFiniteDifferences) {
  manual_seed(12);
  Tensor x = randn({2, 3}, DType::Float64).requires_grad_();
  Tensor a = sigmoid(x) * 2.0;  // non-leaf input
  Tensor y1 = a * a;
  Tensor y2 = sum(log(a + 1.0), {1});
  Tensor v1 = randn({2, 3}, DType::Float64), v2 = randn({2}, DType::Float64);
  std::vector<Tensor> g = autograd::grad({y1, y2}, {a}, {v1, v2});
  auto objective = [&](const Tensor& av) { return sum(av * av * v1) + sum(sum(log(av + 1.0), {1}) * v2); };
  expect_close(values(g[0]), numeric_grad(objective, a.detach()));
}

TEST(AutogradGrad, FiresNoPostAccumulateHookAndLeavesRetainedGradsAlone) {
  Tensor x = leaf({1, 2});
  int post = 0, tensor_hook = 0;
  x.register_post_accumulate_grad_hook([&](const Tensor&) { ++post; });
  Tensor h = x * 3.0;
  h.retain_grad();
  h.register_hook([&](const Tensor& g) {
    ++tensor_hook;
    return g * 2.0;  // hooks on the way do apply
  });
  Tensor loss = sum(h * h);
  std::vector<Tensor> g = autograd::grad({loss}, {x, h});
  EXPECT_EQ(values(g[1]), (std::vector<double>{12, 24}));  // 2 * (2h)
  EXPECT_EQ(values(g[0]), (std::vector<double>{36, 72}));  // 3 * 2 * 2h
  EXPECT_EQ(post, 0);
  EXPECT_EQ(tensor_hook, 1);
  EXPECT_FALSE(x.grad().defined());
  EXPECT_FALSE(h.grad().defined());
}

TEST(AutogradGrad, RunsOnlyThePartOfTheGraphItNeeds) {
  Tensor x = leaf({1, 2, 3});
  int below = 0, between = 0, side = 0;
  Tensor h = counted(x * 2.0, below);                                    // below the input h
  Tensor loss = sum(counted(h, between) * 3.0) + sum(counted(x, side));  // side: a branch not through h
  std::vector<Tensor> g = autograd::grad({loss}, {h}, {}, /*retain_graph=*/true);
  EXPECT_EQ(values(g[0]), (std::vector<double>{3, 3, 3}));
  EXPECT_EQ(between, 1);
  EXPECT_EQ(below, 0);
  EXPECT_EQ(side, 0);
  // The graph is still whole: a full backward afterwards runs everything once.
  loss.backward();
  EXPECT_EQ(between, 2);
  EXPECT_EQ(below, 1);
  EXPECT_EQ(side, 1);
  EXPECT_EQ(values(x.grad()), (std::vector<double>{7, 7, 7}));
}

TEST(AutogradGrad, SplitBackwardInputGradientsFirstThenWeights) {
  // What a pipeline stage does: the gradient for the previous stage first, the weights' gradients later.
  manual_seed(13);
  nn::Linear fc1(4, 6), fc2(6, 3);
  fc1->to(DType::Float64);
  fc2->to(DType::Float64);
  Tensor input = randn({5, 4}, DType::Float64).requires_grad_();
  Tensor act = relu(fc1(input));
  Tensor out = fc2(act);
  Tensor grad_out = randn({5, 3}, DType::Float64);

  std::vector<Tensor> gin = autograd::grad({out}, {act, input}, {grad_out}, /*retain_graph=*/true);
  for (auto& p : fc1->parameters()) EXPECT_FALSE(p.grad().defined());
  autograd::backward({out}, {grad_out});

  // The same from one ordinary backward on a fresh graph.
  std::vector<Tensor> split_grads;
  for (auto& p : fc1->parameters()) split_grads.push_back(p.grad());
  for (auto& p : fc2->parameters()) split_grads.push_back(p.grad());
  fc1->zero_grad();
  fc2->zero_grad();
  Tensor input2 = input.detach().requires_grad_();
  Tensor act2 = relu(fc1(input2));
  act2.retain_grad();
  fc2(act2).backward(grad_out);
  expect_close(values(gin[0]), values(act2.grad()), 1e-12);
  expect_close(values(gin[1]), values(input2.grad()), 1e-12);
  size_t k = 0;
  for (auto& p : fc1->parameters()) expect_close(values(split_grads[k++]), values(p.grad()), 1e-12);
  for (auto& p : fc2->parameters()) expect_close(values(split_grads[k++]), values(p.grad()), 1e-12);
}

TEST(AutogradGrad, UnreachableInputIsAnErrorUnlessAllowed) {
  Tensor x = leaf({1, 2});
  Tensor unused = leaf({3});
  Tensor loss = sum(x * x);
  std::string msg = error_of([&] { autograd::grad({loss}, {x, unused}, {}, true); });
  EXPECT_CONTAINS(msg, "input 1");
  EXPECT_CONTAINS(msg, "[1] float64");
  EXPECT_CONTAINS(msg, "not reachable");
  EXPECT_CONTAINS(msg, "allow_unused");
  std::vector<Tensor> g = autograd::grad({loss}, {x, unused}, {}, true, /*allow_unused=*/true);
  EXPECT_EQ(values(g[0]), (std::vector<double>{2, 4}));
  EXPECT_FALSE(g[1].defined());

  // A non-leaf from another graph is unreachable too.
  Tensor other = unused * 2.0;
  EXPECT_CONTAINS(error_of([&] { autograd::grad({loss}, {other}, {}, true); }), "input 0");
  // An input that needs no gradient at all.
  Tensor c = from_vector(std::vector<double>{1});
  EXPECT_CONTAINS(error_of([&] { autograd::grad({loss}, {c}, {}, true); }), "does not require grad");
}

TEST(AutogradGrad, OutputsAndGradOutputsAreChecked) {
  Tensor x = leaf({1, 2});
  Tensor y = x * 2.0;
  EXPECT_CONTAINS(error_of([&] { autograd::grad({y}, {x}); }), "one-element");
  EXPECT_CONTAINS(error_of([&] { autograd::grad({y}, {x}, {ones({3}, DType::Float64)}); }), "shape");
  EXPECT_CONTAINS(error_of([&] { autograd::grad({y}, {x}, {Tensor(), Tensor()}); }), "2 gradients for 1 outputs");
  std::vector<Tensor> g = autograd::grad({y}, {x, x}, {from_vector(std::vector<double>{1, -1})});
  EXPECT_EQ(values(g[0]), (std::vector<double>{2, -2}));
  EXPECT_EQ(values(g[1]), (std::vector<double>{2, -2}));
  ops::mul_(g[0], 0);  // the two results do not share memory
  EXPECT_EQ(values(g[1]), (std::vector<double>{2, -2}));
}

TEST(AutogradGrad, WithoutRetainGraphTheRunPartIsFreed) {
  Tensor x = leaf({1, 2});
  Tensor loss = sum(exp(x));
  autograd::grad({loss}, {x});
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "second time");
}

TEST(AutogradBackward, SeveralRootsInOnePassEqualSeparatePasses) {
  manual_seed(14);
  Tensor x = randn({3, 2}, DType::Float64).requires_grad_();
  Tensor w = randn({2, 2}, DType::Float64).requires_grad_();
  Tensor v1 = randn({3, 2}, DType::Float64);
  auto build = [&] {
    Tensor h = matmul(x, w);
    return std::vector<Tensor>{braid::tanh(h), sum(h * h), exp(h)};
  };
  std::vector<Tensor> grads{v1, Tensor(), ones({3, 2}, DType::Float64)};
  int hook_calls = 0;
  autograd::HookHandle hook = w.register_post_accumulate_grad_hook([&](const Tensor&) { ++hook_calls; });

  std::vector<Tensor> roots = build();
  autograd::backward(roots, grads);
  EXPECT_EQ(hook_calls, 1);  // w's gradient was final once
  std::vector<double> gx = values(x.grad()), gw = values(w.grad());

  x.set_grad(Tensor());
  w.set_grad(Tensor());
  roots = build();
  roots[0].backward(v1, true);
  roots[1].backward(Tensor(), true);
  roots[2].backward(grads[2]);
  EXPECT_EQ(hook_calls, 4);
  expect_close(gx, values(x.grad()), 1e-12);
  expect_close(gw, values(w.grad()), 1e-12);
}

TEST(AutogradBackward, ARootBelowAnotherRootGetsBothGradients) {
  Tensor x = leaf({1, 2});
  Tensor h = x * 3.0;
  Tensor loss = sum(h * h);
  h.retain_grad();
  autograd::backward({loss, h}, {Tensor(), ones({2}, DType::Float64)});
  // dh = 2h + 1 = (7, 13); dx = 3 dh.
  EXPECT_EQ(values(h.grad()), (std::vector<double>{7, 13}));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{21, 39}));
  // The same tensor twice sums its gradients.
  Tensor y = leaf({5});
  autograd::backward({y, y});
  EXPECT_EQ(values(y.grad()), (std::vector<double>{2}));
}

TEST(AutogradBackward, RootsAreChecked) {
  Tensor x = leaf({1, 2});
  Tensor c = from_vector(std::vector<double>{1});
  EXPECT_CONTAINS(error_of([&] { autograd::backward({}); }), "no output");
  EXPECT_CONTAINS(error_of([&] { autograd::backward({sum(x), c}); }), "output 1");
  EXPECT_CONTAINS(error_of([&] { autograd::backward({x * 2.0}); }), "one-element");
  // Errors name the root's index among several, and Tensor::backward by its name alone.
  EXPECT_CONTAINS(error_of([&] { autograd::backward({sum(x), c}); }), "backward (output 1): the tensor does not");
  EXPECT_CONTAINS(error_of([&] { (x * 2.0).backward(); }), "backward: a gradient can only be implied");
}
