// Hooks and their handles: register_hook on leaves and non-leaves (seeing and replacing the gradient),
// retain_grad, post-accumulate-grad hooks seeing a const leaf, removal through handles (explicit and scoped), and
// the engine being registered once rather than by every recorded node.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;

namespace {

Tensor leaf(std::vector<double> v, Shape s = {}) { return from_vector(v, s).requires_grad_(true); }

std::vector<double> values(const Tensor& t) { return t.to_vector<double>(); }

}  // namespace

TEST(AutogradHooks, HookOnANonLeafSeesAndReplacesItsGradient) {
  Tensor x = leaf({1, 2, 3});
  Tensor h = x * 2.0;
  std::vector<std::vector<double>> seen;
  autograd::HookHandle observe = h.register_hook([&](const Tensor& g) { seen.push_back(values(g)); });
  autograd::HookHandle doubler = h.register_hook([](const Tensor& g) { return g * 2.0; });
  Tensor loss = sum(h * h);  // d loss / dh = 2h = 4x
  loss.backward();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0], (std::vector<double>{4, 8, 12}));
  // The doubled gradient flows on: dx = 2 * (2 * 4x).
  EXPECT_EQ(values(x.grad()), (std::vector<double>{16, 32, 48}));

  // Hooks run in registration order: the observer registered after the doubler sees the doubled gradient.
  x.set_grad(Tensor());
  Tensor h2 = x * 1.0;
  std::vector<double> after;
  h2.register_hook([](const Tensor& g) { return g * 3.0; });
  h2.register_hook([&](const Tensor& g) { after = values(g); });
  sum(h2).backward();
  EXPECT_EQ(after, (std::vector<double>{3, 3, 3}));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{3, 3, 3}));
}

TEST(AutogradHooks, HookOnALeafChangesWhatIsAccumulated) {
  Tensor x = leaf({1, 2});
  x.register_hook([](const Tensor& g) { return g * 10.0; });
  std::vector<double> at_post_hook;
  x.register_post_accumulate_grad_hook([&](const Tensor& t) { at_post_hook = values(t.grad()); });
  sum(x * x).backward();
  EXPECT_EQ(values(x.grad()), (std::vector<double>{20, 40}));
  EXPECT_EQ(at_post_hook, (std::vector<double>{20, 40}));
  // Backward straight from the leaf goes through the hook too.
  x.backward(ones({2}, DType::Float64));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{30, 50}));
}

TEST(AutogradHooks, HookOnANonLeafOutlivesTheTensorInTheGraph) {
  Tensor x = leaf({1, 2});
  int calls = 0;
  Tensor loss;
  {
    Tensor h = exp(x);
    h.register_hook([&](const Tensor&) { ++calls; });
    loss = sum(h);
  }
  loss.backward();
  EXPECT_EQ(calls, 1);
}

TEST(AutogradHooks, HookReturningAWrongShapeIsAnError) {
  Tensor x = leaf({1, 2});
  Tensor h = x * 2.0;
  h.register_hook([](const Tensor&) { return ones({3}, DType::Float64); });
  std::string msg = error_of([&] { sum(h).backward(); });
  EXPECT_CONTAINS(msg, "register_hook");
  EXPECT_CONTAINS(msg, "[3]");
  EXPECT_CONTAINS(msg, "[2]");
}

TEST(AutogradHooks, HooksNeedATensorThatRequiresGrad) {
  Tensor c = from_vector(std::vector<double>{1, 2});
  EXPECT_CONTAINS(error_of([&] { c.register_hook([](const Tensor&) {}); }), "does not require grad");
  EXPECT_CONTAINS(error_of([&] { c.retain_grad(); }), "does not require grad");
}

TEST(AutogradHooks, RetainGradKeepsANonLeafGradientAcrossPasses) {
  Tensor x = leaf({1, -2, 3});
  Tensor h = x * x;  // non-leaf
  Tensor other = x * 3.0;
  EXPECT_FALSE(h.retains_grad());
  autograd::HookHandle handle = h.retain_grad();
  EXPECT_TRUE(handle.active());
  EXPECT_TRUE(h.retains_grad());
  Tensor loss = sum(h * h) + sum(other);  // d loss / dh = 2h
  loss.backward(Tensor(), /*retain_graph=*/true);
  EXPECT_EQ(values(h.grad()), (std::vector<double>{2, 8, 18}));
  EXPECT_FALSE(other.grad().defined());  // not retained
  // A second pass sums into it, as into a leaf's .grad.
  loss.backward(Tensor(), true);
  EXPECT_EQ(values(h.grad()), (std::vector<double>{4, 16, 36}));
  // A second retain_grad is a no-op; removing the first handle stops the retaining.
  EXPECT_FALSE(h.retain_grad().active());
  handle.remove();
  EXPECT_FALSE(h.retains_grad());
  loss.backward();
  EXPECT_EQ(values(h.grad()), (std::vector<double>{4, 16, 36}));

  // On a leaf it changes nothing (a leaf keeps its gradient anyway).
  EXPECT_FALSE(x.retain_grad().active());
}

TEST(AutogradHooks, RetainGradSeesTheGradientAfterTheTensorsHooks) {
  Tensor x = leaf({1, 2});
  Tensor h = x * 1.0;
  h.retain_grad();
  h.register_hook([](const Tensor& g) { return g * 5.0; });  // registered later, still runs first
  sum(h).backward();
  EXPECT_EQ(values(h.grad()), (std::vector<double>{5, 5}));
}

TEST(AutogradHooks, RetainGradOnARootKeepsTheGivenGradient) {
  Tensor x = leaf({1, 2});
  Tensor y = x * 4.0;
  y.retain_grad();
  y.backward(from_vector(std::vector<double>{0.5, -1}));
  EXPECT_EQ(values(y.grad()), (std::vector<double>{0.5, -1}));
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, -4}));
}

TEST(AutogradHooks, HandlesRemoveTheirHook) {
  Tensor x = leaf({1, 2});
  int tensor_calls = 0, post_calls = 0, node_calls = 0;
  autograd::HookHandle on_leaf = x.register_hook([&](const Tensor&) { ++tensor_calls; });
  autograd::HookHandle post = x.register_post_accumulate_grad_hook([&](const Tensor&) { ++post_calls; });
  sum(x * x).backward();
  EXPECT_EQ(tensor_calls, 1);
  EXPECT_EQ(post_calls, 1);
  EXPECT_EQ(autograd_meta(x).grad_hooks.size(), 1u);
  EXPECT_EQ(autograd_meta(x).post_accumulate_grad_hooks.size(), 1u);

  on_leaf.remove();
  post.remove();
  EXPECT_FALSE(on_leaf.active());
  on_leaf.remove();  // a second remove does nothing
  EXPECT_EQ(autograd_meta(x).grad_hooks.size(), 0u);
  EXPECT_EQ(autograd_meta(x).post_accumulate_grad_hooks.size(), 0u);
  sum(x * x).backward();
  EXPECT_EQ(tensor_calls, 1);
  EXPECT_EQ(post_calls, 1);

  // On a non-leaf: removed from its node.
  Tensor h = x * 2.0;
  autograd::HookHandle on_node = h.register_hook([&](const Tensor&) { ++node_calls; });
  EXPECT_EQ(h.grad_fn()->pre_hooks.size(), 1u);
  on_node.remove();
  EXPECT_EQ(h.grad_fn()->pre_hooks.size(), 0u);
  sum(h).backward();
  EXPECT_EQ(node_calls, 0);

  // Removing after the tensor is gone is harmless.
  autograd::HookHandle orphan;
  {
    Tensor y = leaf({1});
    orphan = y.register_hook([](const Tensor&) {});
  }
  EXPECT_TRUE(orphan.active());
  orphan.remove();
  EXPECT_FALSE(orphan.active());
}

TEST(AutogradHooks, DroppingAHandleKeepsTheHookAndAScopedHandleRemovesIt) {
  Tensor x = leaf({1});
  int calls = 0;
  {
    autograd::HookHandle dropped = x.register_post_accumulate_grad_hook([&](const Tensor&) { ++calls; });
  }
  {
    autograd::ScopedHookHandle scoped = x.register_post_accumulate_grad_hook([&](const Tensor&) { calls += 100; });
    EXPECT_EQ(autograd_meta(x).post_accumulate_grad_hooks.size(), 2u);
    sum(x).backward();
    EXPECT_EQ(calls, 101);
  }
  EXPECT_EQ(autograd_meta(x).post_accumulate_grad_hooks.size(), 1u);
  sum(x).backward();
  EXPECT_EQ(calls, 102);

  // Moving a handle moves the right to remove.
  autograd::HookHandle a = x.register_hook([](const Tensor&) {});
  autograd::HookHandle b = std::move(a);
  EXPECT_FALSE(a.active());  // NOLINT(bugprone-use-after-move): the moved-from state is part of the contract
  EXPECT_TRUE(b.active());
  b.remove();
  EXPECT_EQ(autograd_meta(x).grad_hooks.size(), 0u);
}

TEST(AutogradHooks, AThousandRegistrationsAndRemovalsLeaveNoHook) {
  Tensor x = leaf({1, 2});
  for (int i = 0; i < 1000; ++i) {
    autograd::HookHandle h = x.register_post_accumulate_grad_hook([](const Tensor&) {});
    h.remove();
  }
  EXPECT_EQ(autograd_meta(x).post_accumulate_grad_hooks.size(), 0u);
}

TEST(AutogradHooks, AHookMayRemoveItselfWhileHooksRun) {
  Tensor x = leaf({1});
  int first = 0, second = 0;
  autograd::HookHandle self;
  self = x.register_post_accumulate_grad_hook([&](const Tensor&) {
    ++first;
    self.remove();
  });
  x.register_post_accumulate_grad_hook([&](const Tensor&) { ++second; });
  sum(x).backward();
  sum(x).backward();
  EXPECT_EQ(first, 1);
  EXPECT_EQ(second, 2);
}

namespace {
const autograd::Engine* g_real_engine = nullptr;
int g_spy_calls = 0;
}  // namespace

TEST(AutogradEngine, IsRegisteredOnceNotByEveryRecordedNode) {
  g_real_engine = autograd::engine();
  ASSERT_NE(g_real_engine, nullptr);
  autograd::Engine spy = *g_real_engine;
  spy.backward = [](const Tensor& root, const Tensor& gradient, bool retain_graph) {
    ++g_spy_calls;
    g_real_engine->backward(root, gradient, retain_graph);
  };
  struct Restore {
    ~Restore() { autograd::set_engine(g_real_engine); }
  } restore;
  autograd::set_engine(&spy);
  g_spy_calls = 0;
  Tensor x = leaf({1, 2});
  Tensor loss = sum(x * x);  // recording nodes must not re-register the engine
  loss.backward();
  EXPECT_EQ(g_spy_calls, 1);
  EXPECT_EQ(values(x.grad()), (std::vector<double>{2, 4}));
  EXPECT_EQ(autograd::engine(), &spy);
}
