// Split backward (autograd::backward_input and its deferred weight half), as zero-bubble pipelines run it: the two
// halves together give what one backward gives (float64, and against central differences for the MLP), the weight
// half re-runs nothing of the input half (hooks, counted backwards), and misuse is an error.
#include <gtest/gtest.h>

#include <functional>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;

namespace {

Tensor param(Shape s) { return randn(std::move(s), DType::Float64).requires_grad_(); }

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

void expect_close(const Tensor& actual, const Tensor& expected, const std::string& what, double tol = 1e-10) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_TRUE(expected.defined()) << what;
  std::vector<double> a = values(actual), e = values(expected);
  ASSERT_EQ(a.size(), e.size()) << what;
  for (size_t i = 0; i < a.size(); ++i) EXPECT_NEAR(a[i], e[i], tol * (1 + std::abs(e[i]))) << what << " [" << i << "]";
}

void clear_grads(const std::vector<Tensor>& ts) {
  for (const auto& t : ts) t.set_grad(Tensor());
}

std::vector<Tensor> grads_of(const std::vector<Tensor>& ts) {
  std::vector<Tensor> out;
  for (const auto& t : ts) out.push_back(t.grad().defined() ? ops::clone(t.grad()) : Tensor());
  return out;
}

using Forward = std::function<Tensor()>;

// One full backward of forward() from grad_root: the inputs' and the weights' gradients.
std::pair<std::vector<Tensor>, std::vector<Tensor>> full_backward(const Forward& forward, const Tensor& grad_root,
                                                                  const std::vector<Tensor>& inputs,
                                                                  const std::vector<Tensor>& weights) {
  clear_grads(inputs);
  clear_grads(weights);
  autograd::backward({forward()}, {grad_root});
  auto r = std::make_pair(grads_of(inputs), grads_of(weights));
  clear_grads(inputs);
  clear_grads(weights);
  return r;
}

// The same through backward_input and the deferred weight half; the weights' .grad stays untouched until then.
std::pair<std::vector<Tensor>, std::vector<Tensor>> split_backward(const Forward& forward, const Tensor& grad_root,
                                                                   const std::vector<Tensor>& inputs,
                                                                   const std::vector<Tensor>& weights) {
  clear_grads(inputs);
  clear_grads(weights);
  autograd::SplitBackward split = autograd::backward_input({forward()}, {grad_root}, inputs, weights);
  for (const auto& w : weights) EXPECT_FALSE(w.grad().defined()) << "a weight's .grad written by the input half";
  for (const auto& x : inputs) EXPECT_FALSE(x.grad().defined()) << "an input's .grad written by the input half";
  EXPECT_TRUE(split.weight.pending());
  autograd::backward_weight(split.weight);
  EXPECT_FALSE(split.weight.pending());
  auto r = std::make_pair(split.input_grads, grads_of(weights));
  clear_grads(weights);
  return r;
}

void expect_split_matches_full(const Forward& forward, const Tensor& grad_root, const std::vector<Tensor>& inputs,
                               const std::vector<Tensor>& weights) {
  auto [full_in, full_w] = full_backward(forward, grad_root, inputs, weights);
  auto [split_in, split_w] = split_backward(forward, grad_root, inputs, weights);
  ASSERT_EQ(split_in.size(), inputs.size());
  for (size_t i = 0; i < inputs.size(); ++i) expect_close(split_in[i], full_in[i], "input " + std::to_string(i));
  for (size_t i = 0; i < weights.size(); ++i) {
    if (!full_w[i].defined()) {
      EXPECT_FALSE(split_w[i].defined()) << "weight " << i << " got a gradient the full backward does not give";
      continue;
    }
    expect_close(split_w[i], full_w[i], "weight " + std::to_string(i));
  }
}

// Central differences of sum(forward() * grad_root) with respect to t (float64, perturbed in place).
std::vector<double> numeric_grad(const Forward& forward, const Tensor& grad_root, const Tensor& t) {
  NoGradGuard no_grad;
  const double eps = 1e-6;
  std::vector<double> out(size_t(t.numel()));
  auto objective = [&] { return sum(mul(forward(), grad_root)).item<double>(); };
  Tensor flat = ops::reshape(t, {-1});
  for (int64_t i = 0; i < t.numel(); ++i) {
    Tensor e = ops::narrow(flat, 0, i, 1);
    double v = e.item<double>();
    ops::fill_(e, v + eps);
    double plus = objective();
    ops::fill_(e, v - eps);
    double minus = objective();
    ops::fill_(e, v);
    out[size_t(i)] = (plus - minus) / (2 * eps);
  }
  return out;
}

// x @ w that counts the gradients it computes and honours the pass's EdgeMask, as an expensive op should.
struct CountedMatmul {
  int input_grads = 0, weight_grads = 0;

  Tensor operator()(const Tensor& x, const Tensor& w) {
    Tensor out = ops::matmul(x, w);
    if (!autograd::any_requires_grad({x, w})) return out;
    return autograd::record(
        "CountedMatmulBackward", out, {x, w},
        autograd::MaskedBackwardFn(
            [this, x = x.detach(), w = w.detach()](const Tensor& g, const autograd::EdgeMask& wanted) {
              std::vector<Tensor> grads(2);
              if (wanted[0]) {
                ++input_grads;
                grads[0] = ops::matmul(g, ops::transpose(w, 0, 1));
              }
              if (wanted[1]) {
                ++weight_grads;
                grads[1] = ops::matmul(ops::transpose(x, 0, 1), g);
              }
              return grads;
            }),
        {x, w});
  }
};

}  // namespace

TEST(SplitBackward, MlpMatchesFullBackwardAndFiniteDifferences) {
  manual_seed(3);
  Tensor x = param({4, 5}), w1 = param({6, 5}), b1 = param({6}), w2 = param({3, 6}), b2 = param({3});
  Forward f = [&] { return linear(relu(linear(x, w1, b1)), w2, b2); };
  Tensor g = randn({4, 3}, DType::Float64);
  expect_split_matches_full(f, g, {x}, {w1, b1, w2, b2});

  auto [split_in, split_w] = split_backward(f, g, {x}, {w1, b1, w2, b2});
  std::vector<double> nx = numeric_grad(f, g, x), nw1 = numeric_grad(f, g, w1), nb2 = numeric_grad(f, g, b2);
  std::vector<double> ax = values(split_in[0]), aw1 = values(split_w[0]), ab2 = values(split_w[3]);
  for (size_t i = 0; i < nx.size(); ++i) EXPECT_NEAR(ax[i], nx[i], 1e-6 * (1 + std::abs(nx[i]))) << "x " << i;
  for (size_t i = 0; i < nw1.size(); ++i) EXPECT_NEAR(aw1[i], nw1[i], 1e-6 * (1 + std::abs(nw1[i]))) << "w1 " << i;
  for (size_t i = 0; i < nb2.size(); ++i) EXPECT_NEAR(ab2[i], nb2[i], 1e-6 * (1 + std::abs(nb2[i]))) << "b2 " << i;
}

TEST(SplitBackward, WeightUsedTwiceSumsBothUses) {
  manual_seed(4);
  Tensor x = param({3, 5}), w = param({5, 5}), b = param({5});
  Forward f = [&] { return linear(tanh(linear(x, w, b)), w) * 0.5 + matmul(x, w); };
  expect_split_matches_full(f, randn({3, 5}, DType::Float64), {x}, {w, b});
}

TEST(SplitBackward, WeightTheRootDoesNotReachKeepsNoGradient) {
  manual_seed(5);
  Tensor x = param({2, 4}), w = param({3, 4}), unused = param({3, 4}), elsewhere = param({4});
  Tensor other_graph = sum(elsewhere * 2.0);  // elsewhere has an accumulator, in a graph this root does not reach
  Forward f = [&] { return sigmoid(linear(x, w)); };
  expect_split_matches_full(f, randn({2, 3}, DType::Float64), {x}, {w, unused, elsewhere});
  EXPECT_FALSE(unused.grad().defined());
  EXPECT_FALSE(elsewhere.grad().defined());
  EXPECT_TRUE(other_graph.requires_grad());
}

TEST(SplitBackward, NonLeafInputWithWeightsOnBothSides) {
  manual_seed(6);
  Tensor x0 = param({3, 4}), w0 = param({5, 4}), w1 = param({2, 5}), b1 = param({2});
  Tensor g = randn({3, 2}, DType::Float64);
  // Reference: the full backward for the weights, autograd::grad for the non-leaf's gradient.
  Tensor h = linear(x0, w0);
  Tensor expected_h = autograd::grad({linear(gelu(h), w1, b1)}, {h}, {g})[0];
  clear_grads({x0, w0, w1, b1});
  autograd::backward({linear(gelu(linear(x0, w0)), w1, b1)}, {g});
  std::vector<Tensor> expected_w = grads_of({w0, w1, b1});
  clear_grads({x0, w0, w1, b1});

  h = linear(x0, w0);
  autograd::SplitBackward split = autograd::backward_input({linear(gelu(h), w1, b1)}, {g}, {h}, {w0, w1, b1});
  expect_close(split.input_grads[0], expected_h, "h");
  split.weight.run();
  std::vector<Tensor> got = grads_of({w0, w1, b1});
  for (size_t i = 0; i < got.size(); ++i) expect_close(got[i], expected_w[i], "weight " + std::to_string(i));
  EXPECT_FALSE(x0.grad().defined()) << "x0 is neither an input nor a weight of the split";
}

TEST(SplitBackward, LayerNormMatchesFullBackward) {
  manual_seed(7);
  Tensor x = param({4, 6}), gamma = param({6}), beta = param({6}), w = param({3, 6});
  Forward f = [&] { return linear(nn::functional::layer_norm(x, {6}, gamma, beta, 1e-5), w); };
  expect_split_matches_full(f, randn({4, 3}, DType::Float64), {x}, {gamma, beta, w});
}

TEST(SplitBackward, NoInputsDefersTheWholeBackward) {
  manual_seed(8);
  Tensor x = randn({4, 5}, DType::Float64), w1 = param({6, 5}), w2 = param({2, 6});
  Forward f = [&] { return linear(relu(linear(x, w1)), w2); };
  expect_split_matches_full(f, randn({4, 2}, DType::Float64), {}, {w1, w2});
}

TEST(SplitBackward, HookOnActivationFiresInInputHalfOnly) {
  manual_seed(9);
  Tensor x = param({3, 4}), w1 = param({5, 4}), w2 = param({2, 5}), scale = param({5});
  int activation_hooks = 0, weight_branch_hooks = 0;
  Tensor h = relu(linear(x, w1));
  h.register_hook([&](const Tensor&) { ++activation_hooks; });
  Tensor s = scale * 3.0;  // leads to a weight only: its hook belongs to the weight half
  s.register_hook([&](const Tensor&) { ++weight_branch_hooks; });
  Tensor y = linear(h * s, w2);
  autograd::SplitBackward split = autograd::backward_input({y}, {ones({3, 2}, DType::Float64)}, {x}, {w1, w2, scale});
  EXPECT_EQ(activation_hooks, 1);
  EXPECT_EQ(weight_branch_hooks, 0);
  split.weight.run();
  EXPECT_EQ(activation_hooks, 1) << "the weight half ran the input path again";
  EXPECT_EQ(weight_branch_hooks, 1);
  EXPECT_TRUE(scale.grad().defined());
}

TEST(SplitBackward, ExpensiveNodeComputesEachGradientOnce) {
  manual_seed(10);
  Tensor x = param({3, 4}), w1 = param({4, 5}), w2 = param({5, 2});
  CountedMatmul first, second;
  Tensor y = second(tanh(first(x, w1)), w2);
  autograd::SplitBackward split = autograd::backward_input({y}, {ones({3, 2}, DType::Float64)}, {x}, {w1, w2});
  EXPECT_EQ(first.input_grads, 1);
  EXPECT_EQ(second.input_grads, 1);
  EXPECT_EQ(first.weight_grads, 0) << "the input half did weight work";
  EXPECT_EQ(second.weight_grads, 0) << "the input half did weight work";
  split.weight.run();
  EXPECT_EQ(first.input_grads, 1) << "the weight half recomputed an input gradient";
  EXPECT_EQ(second.input_grads, 1) << "the weight half recomputed an input gradient";
  EXPECT_EQ(first.weight_grads, 1);
  EXPECT_EQ(second.weight_grads, 1);

  // The same op through a full backward: every gradient once.
  CountedMatmul again;
  clear_grads({x, w1});
  autograd::backward({again(x, w1)}, {ones({3, 5}, DType::Float64)});
  EXPECT_EQ(again.input_grads, 1);
  EXPECT_EQ(again.weight_grads, 1);
}

TEST(SplitBackward, GradSkipsTheWeightGradientsItDoesNotWant) {
  manual_seed(11);
  Tensor x = param({3, 4}), w = param({4, 2});
  CountedMatmul op;
  Tensor gx = autograd::grad({op(x, w)}, {x}, {ones({3, 2}, DType::Float64)})[0];
  EXPECT_EQ(op.input_grads, 1);
  EXPECT_EQ(op.weight_grads, 0);
  expect_close(gx, matmul(ones({3, 2}, DType::Float64), transpose(w.detach(), 0, 1)), "x");
}

TEST(SplitBackward, WeightHalfBeforeInputHalfIsAnError) {
  autograd::DeferredWeightGrad never_made;
  EXPECT_FALSE(never_made.pending());
  std::string msg = error_of([&] { never_made.run(); });
  EXPECT_NE(msg.find("backward_weight"), std::string::npos) << msg;
  EXPECT_NE(msg.find("backward_input first"), std::string::npos) << msg;
}

TEST(SplitBackward, WeightHalfTwiceIsAnError) {
  manual_seed(12);
  Tensor x = param({2, 3}), w = param({4, 3});
  autograd::SplitBackward split = autograd::backward_input({linear(x, w)}, {ones({2, 4}, DType::Float64)}, {x}, {w});
  autograd::DeferredWeightGrad copy = split.weight;
  split.weight.run();
  Tensor first = ops::clone(w.grad());
  std::string msg = error_of([&] { autograd::backward_weight(copy); });
  EXPECT_NE(msg.find("already ran"), std::string::npos) << msg;
  expect_close(w.grad(), first, "w after the refused second run");
}

TEST(SplitBackward, BadArgumentsAreErrors) {
  manual_seed(13);
  Tensor x = param({2, 3}), w = param({4, 3});
  Tensor gy = ones({2, 4}, DType::Float64);
  std::string both = error_of([&] { autograd::backward_input({linear(x, w)}, {gy}, {x}, {w, x}); });
  EXPECT_NE(both.find("weight 1"), std::string::npos) << both;
  EXPECT_NE(both.find("also one of the inputs"), std::string::npos) << both;
  Tensor non_leaf = w * 2.0;
  std::string not_leaf = error_of([&] { autograd::backward_input({linear(x, non_leaf)}, {gy}, {x}, {non_leaf}); });
  EXPECT_NE(not_leaf.find("must be a leaf"), std::string::npos) << not_leaf;
  Tensor stray = param({2, 3});
  Tensor keep_alive = stray * 1.0;
  std::string unreachable = error_of([&] { autograd::backward_input({linear(x, w)}, {gy}, {stray}, {w}); });
  EXPECT_NE(unreachable.find("not reachable"), std::string::npos) << unreachable;
  EXPECT_TRUE(keep_alive.requires_grad());
}

TEST(SplitBackward, PostAccumulateHookFiresOnceInWeightHalf) {
  manual_seed(14);
  Tensor x = param({3, 4}), w = param({4, 4});
  int fired = 0;
  auto handle = w.register_post_accumulate_grad_hook([&](const Tensor&) { ++fired; });
  Tensor y = linear(tanh(linear(x, w)), w);  // two uses: one final gradient, one hook call
  autograd::SplitBackward split = autograd::backward_input({y}, {ones({3, 4}, DType::Float64)}, {x}, {w});
  EXPECT_EQ(fired, 0);
  split.weight.run();
  EXPECT_EQ(fired, 1);
}
