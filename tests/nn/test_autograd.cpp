// The autograd engine's contract: accumulation, explicit and implied output gradients, detach and no-grad,
// shared inputs, freeing the graph, and the post-accumulate-grad hooks that DistributedDataParallel relies on.
#include <gtest/gtest.h>

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;
using braid::test::expect_error;

namespace {

Tensor leaf(std::vector<double> v, Shape s = {}) { return from_vector(v, s).requires_grad_(true); }

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST(Autograd, LeavesAndGraphNodes) {
  Tensor x = leaf({1, 2, 3});
  EXPECT_TRUE(x.requires_grad());
  EXPECT_TRUE(x.is_leaf());
  EXPECT_EQ(x.grad_fn(), nullptr);
  EXPECT_FALSE(x.grad().defined());
  Tensor y = x * x;
  EXPECT_TRUE(y.requires_grad());
  EXPECT_FALSE(y.is_leaf());
  ASSERT_NE(y.grad_fn(), nullptr);
  EXPECT_EQ(y.grad_fn()->name, "MulBackward");
  // Ops on tensors that need no gradient record nothing.
  Tensor c = from_vector(std::vector<double>{1, 2, 3});
  Tensor d = c * c;
  EXPECT_FALSE(d.requires_grad());
  EXPECT_EQ(d.grad_fn(), nullptr);

  EXPECT_THROW(from_vector(std::vector<int64_t>{1}).requires_grad_(), Error);
  std::string msg = error_of([&] { y.requires_grad_(false); });
  EXPECT_CONTAINS(msg, "leaf");
}

TEST(Autograd, GradientAccumulatesOverTwoBackwardCalls) {
  Tensor x = leaf({1, -2, 3});
  sum(x * x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, -4, 6}));
  sum(x * 3.0).backward();  // a second, different graph adds to .grad
  EXPECT_EQ(values(x.grad()), (std::vector<double>{5, -1, 9}));
  x.set_grad(Tensor());
  sum(x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, 1, 1}));
}

TEST(Autograd, BackwardWithExplicitGradientForNonScalarOutput) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = x * x * 0.5;  // dy/dx = x
  Tensor g = from_vector(std::vector<double>{1, 0, -1, 2, 0.5, 3}, {2, 3});
  y.backward(g);
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, 0, -3, 8, 2.5, 18}));
  // The given gradient is not adopted as .grad (the caller still owns it).
  EXPECT_NE(x.grad().storage().ptr.get(), g.storage().ptr.get());

  Tensor z = x * 2.0;
  std::string msg = error_of([&] { z.backward(ones({3, 2}, DType::Float64)); });
  EXPECT_CONTAINS(msg, "backward");
  EXPECT_CONTAINS(msg, "[3, 2]");
  EXPECT_CONTAINS(msg, "[2, 3]");
  EXPECT_THROW(z.backward(ones({2, 3}, DType::Float32)), Error);
}

TEST(Autograd, NonScalarBackwardWithoutGradientThrows) {
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor y = x * 2.0;
  std::string msg = error_of([&] { y.backward(); });
  EXPECT_CONTAINS(msg, "backward");
  EXPECT_CONTAINS(msg, "[2, 3]");
  EXPECT_FALSE(x.grad().defined());
  // A one-element output of any rank implies a gradient of one.
  Tensor s = reshape(sum(x), {1, 1});
  s.backward();
  EXPECT_EQ(values(x.grad()), std::vector<double>(6, 1.0));
  // Backward of something with no graph at all.
  msg = error_of([] { sum(from_vector(std::vector<double>{1, 2})).backward(); });
  EXPECT_CONTAINS(msg, "does not require grad");
}

TEST(Autograd, DetachStopsGradients) {
  Tensor x = leaf({1, 2, 3});
  Tensor d = x.detach();
  EXPECT_FALSE(d.requires_grad());
  EXPECT_TRUE(d.is_leaf());
  EXPECT_EQ(d.storage().ptr.get(), x.storage().ptr.get());  // shares memory
  Tensor y = (x * 2.0).detach();
  EXPECT_FALSE(y.requires_grad());
  EXPECT_EQ(y.grad_fn(), nullptr);

  sum(x * d).backward();  // d is a constant: the gradient is d, not 2x
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, 2, 3}));
  x.set_grad(Tensor());
  sum(x * x.detach() + y).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{1, 2, 3}));
}

TEST(Autograd, NoGradGuardRecordsNothing) {
  Tensor x = leaf({1, 2, 3});
  EXPECT_TRUE(autograd::GradMode::is_enabled());
  {
    NoGradGuard guard;
    EXPECT_FALSE(autograd::GradMode::is_enabled());
    Tensor y = exp(x * x + 1.0);
    EXPECT_FALSE(y.requires_grad());
    EXPECT_EQ(y.grad_fn(), nullptr);
    Tensor z = matmul(reshape(x, {1, 3}), reshape(x, {3, 1}));
    EXPECT_FALSE(z.requires_grad());
    EXPECT_FALSE(sum(transpose(reshape(x, {3, 1}), 0, 1)).requires_grad());
    EXPECT_THROW(sum(y).backward(), Error);
    {
      NoGradGuard nested;
      EXPECT_FALSE(autograd::GradMode::is_enabled());
    }
    EXPECT_FALSE(autograd::GradMode::is_enabled());  // the inner guard restores "off"
  }
  EXPECT_TRUE(autograd::GradMode::is_enabled());
  Tensor w = x * x;
  EXPECT_TRUE(w.requires_grad());
  EXPECT_FALSE(x.grad().defined());
}

TEST(Autograd, TensorUsedTwiceGetsSummedGradient) {
  Tensor x = leaf({1, -2, 0.5});
  sum(x * x + x * 3.0).backward();  // 2x + 3
  EXPECT_EQ(values(x.grad()), (std::vector<double>{5, -1, 4}));

  // A diamond: a feeds two branches that meet again.
  Tensor y = leaf({2, 3});
  Tensor a = y * 2.0;
  Tensor b = a * a + exp(a * 0.0) * a;  // 4y^2 + 2y -> 8y + 2
  sum(b).backward();
  EXPECT_EQ(values(y.grad()), (std::vector<double>{18, 26}));

  // The same tensor as both operands, through views.
  Tensor z = leaf({1, 2, 3, 4}, {2, 2});
  sum(matmul(z, transpose(z, 0, 1))).backward();
  // sum_ij (z z^T)_ij = sum_k (sum_i z_ik)^2, so the gradient is 2 * sum_i z_ik in every row.
  EXPECT_EQ(values(z.grad()), (std::vector<double>{8, 12, 8, 12}));
}

TEST(Autograd, GradientsDoNotAliasEachOther) {
  Tensor a = leaf({1, 2}), b = leaf({3, 4});
  Tensor g = from_vector(std::vector<double>{1, 1});
  (a + b).backward(g);
  ASSERT_TRUE(a.grad().defined() && b.grad().defined());
  EXPECT_NE(a.grad().storage().ptr.get(), b.grad().storage().ptr.get());
  EXPECT_NE(a.grad().storage().ptr.get(), g.storage().ptr.get());
  EXPECT_NE(b.grad().storage().ptr.get(), g.storage().ptr.get());
  ops::mul_(a.grad(), 10);
  EXPECT_EQ(values(b.grad()), (std::vector<double>{1, 1}));
  EXPECT_EQ(values(g), (std::vector<double>{1, 1}));
  // A gradient arriving as a view of another tensor is copied too.
  Tensor c = leaf({1, 2, 3, 4}, {2, 2});
  Tensor d = leaf({5, 6});
  sum(select(c, 0, 1) * d).backward();
  EXPECT_EQ(values(c.grad()), (std::vector<double>{0, 0, 5, 6}));
  EXPECT_EQ(values(d.grad()), (std::vector<double>{3, 4}));
}

TEST(Autograd, SecondBackwardWithoutRetainGraphThrows) {
  Tensor x = leaf({1, 2, 3});
  Tensor loss = sum(exp(x));
  loss.backward();
  std::vector<double> first = values(x.grad());
  std::string msg = error_of([&] { loss.backward(); });
  EXPECT_CONTAINS(msg, "second time");
  EXPECT_CONTAINS(msg, "retain_graph");
  EXPECT_EQ(values(x.grad()), first);  // the failed pass changed nothing

  x.set_grad(Tensor());
  Tensor kept = sum(exp(x));
  kept.backward(Tensor(), /*retain_graph=*/true);
  kept.backward(Tensor(), true);
  kept.backward();
  std::vector<double> g = values(x.grad());
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], 3 * first[i], 1e-12);
  EXPECT_THROW(kept.backward(), Error);
}

TEST(Autograd, PostAccumulateGradHookFiresOncePerBackwardWithFinalGradient) {
  Tensor x = leaf({1, -2, 0.5});
  Tensor unused = leaf({7});
  int calls = 0, unused_calls = 0;
  std::vector<std::vector<double>> seen;
  x.register_post_accumulate_grad_hook([&](const Tensor& t) {
    ++calls;
    EXPECT_TRUE(t.same(x));
    seen.push_back(values(t.grad()));
  });
  unused.register_post_accumulate_grad_hook([&](const Tensor&) { ++unused_calls; });

  // x is used three times; its hook must fire once, after all three contributions are summed: 2x + 3 + 1.
  Tensor y = leaf({10, 20, 30});
  Tensor loss = sum(x * x) + sum(x * 3.0) + sum(mul(x, ones({3}, DType::Float64))) + sum(y);
  loss.backward();
  ASSERT_EQ(calls, 1);
  EXPECT_EQ(seen[0], (std::vector<double>{6, 0, 5}));
  EXPECT_EQ(unused_calls, 0);

  // A second backward: one more call, seeing the accumulated gradient.
  sum(x * x).backward();
  ASSERT_EQ(calls, 2);
  EXPECT_EQ(seen[1], (std::vector<double>{8, -4, 6}));

  // Backward straight from the leaf also fires it.
  x.backward(ones({3}, DType::Float64));
  EXPECT_EQ(calls, 3);
  EXPECT_EQ(seen[2], (std::vector<double>{9, -3, 7}));

  // Several hooks on one leaf all fire, in registration order.
  std::vector<int> order;
  Tensor w = leaf({1});
  w.register_post_accumulate_grad_hook([&](const Tensor&) { order.push_back(1); });
  w.register_post_accumulate_grad_hook([&](const Tensor&) { order.push_back(2); });
  sum(w * w).backward();
  EXPECT_EQ(order, (std::vector<int>{1, 2}));

  // Only leaves that require grad have hooks.
  EXPECT_THROW((x * 2.0).register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
  EXPECT_THROW(from_vector(std::vector<double>{1}).register_post_accumulate_grad_hook([](const Tensor&) {}), Error);
}

TEST(Autograd, HooksOfAMultiLayerModelFireInReverseLayerOrder) {
  manual_seed(3);
  nn::Sequential model(nn::Linear(4, 8), nn::ReLU(), nn::Linear(8, 8), nn::Tanh(), nn::Linear(8, 6), nn::GELU(),
                       nn::Linear(6, 2));
  std::vector<std::string> fired;
  std::map<std::string, int> count;
  auto named = model->named_parameters();
  ASSERT_EQ(named.size(), 8u);
  for (auto& [name, p] : named) {
    std::string n = name;
    p.register_post_accumulate_grad_hook([&fired, &count, n](const Tensor& t) {
      EXPECT_TRUE(t.grad().defined());
      fired.push_back(n);
      ++count[n];
    });
  }
  auto layer_of = [](const std::string& name) { return std::stoi(name.substr(0, name.find('.'))); };
  for (int iteration = 0; iteration < 2; ++iteration) {
    SCOPED_TRACE("iteration " + std::to_string(iteration));
    fired.clear();
    count.clear();
    Tensor x = randn({5, 4});
    Tensor loss = nn::mse_loss(model(x), zeros({5, 2}));
    loss.backward();
    ASSERT_EQ(fired.size(), 8u);
    for (auto& [name, _] : named) EXPECT_EQ(count[name], 1) << name;
    EXPECT_EQ(layer_of(fired.front()), 6);
    EXPECT_EQ(layer_of(fired.back()), 0);
    for (size_t i = 1; i < fired.size(); ++i)
      EXPECT_GE(layer_of(fired[i - 1]), layer_of(fired[i])) << fired[i - 1] << " fired before " << fired[i];
    model->zero_grad();
  }
}

TEST(Autograd, NoOpViewsKeepTheInputALeaf) {
  // squeeze of a dim that is not 1, and transpose / squeeze of a 0-d tensor, change nothing; they must still
  // return a new tensor, or recording their backward would rewrite the input's history.
  Tensor x = leaf({1, 2, 3, 4, 5, 6}, {2, 3});
  Tensor s = squeeze(x, 0);
  EXPECT_FALSE(s.same(x));
  EXPECT_TRUE(x.is_leaf());
  EXPECT_EQ(x.grad_fn(), nullptr);
  EXPECT_FALSE(s.is_leaf());
  sum(s * s).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 4, 6, 8, 10, 12}));
  EXPECT_NO_THROW(optim::SGD({x}, {.lr = 0.1}));

  Tensor c = scalar_tensor(3, DType::Float64).requires_grad_(true);
  ASSERT_EQ(c.dim(), 0);
  Tensor ct = transpose(c, 0, 0), cs = squeeze(c, 0);
  EXPECT_FALSE(ct.same(c));
  EXPECT_FALSE(cs.same(c));
  EXPECT_TRUE(c.is_leaf());
  (ct * cs).backward();
  EXPECT_EQ(c.grad().item<double>(), 6.0);
  EXPECT_NO_THROW(c.register_post_accumulate_grad_hook([](const Tensor&) {}));
}

TEST(Autograd, FrozenParametersGetNoGradient) {
  Tensor w = leaf({1, 2});
  Tensor frozen = from_vector(std::vector<double>{3, 4});
  sum(w * frozen).backward();
  EXPECT_EQ(values(w.grad()), (std::vector<double>{3, 4}));
  EXPECT_FALSE(frozen.grad().defined());
  // An integer tensor in the graph (an index) is fine and gets no gradient.
  Tensor table = leaf({1, 2, 3, 4, 5, 6}, {3, 2});
  Tensor idx = from_vector(std::vector<int64_t>{2, 2});
  sum(index_select(table, 0, idx)).backward();
  EXPECT_EQ(values(table.grad()), (std::vector<double>{0, 0, 0, 0, 2, 2}));
  EXPECT_FALSE(idx.grad().defined());
}
