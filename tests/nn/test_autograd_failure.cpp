// A backward pass that throws part-way leaves a graph that reports the same error when tried again, instead of a
// misleading "backward through the graph a second time" for nodes the failed pass had already freed.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::error_of;

namespace {

Tensor leaf(std::vector<double> v, Shape s = {}) { return from_vector(v, s).requires_grad_(true); }

// An identity op whose backward throws.
Tensor throwing_identity(const Tensor& a) {
  Tensor out = ops::clone(a);
  return autograd::record("ThrowingBackward", out, {a}, [](const Tensor&) -> std::vector<Tensor> {
    BRAID_FAIL("ThrowingBackward: deliberate failure");
  });
}

}  // namespace

TEST(AutogradFailure, RetryAfterASavedTensorWasModifiedReportsTheSameError) {
  Tensor x = leaf({0.5, -1, 2});
  Tensor y = exp(x);
  Tensor loss = sum(y * 2.0);  // two nodes above ExpBackward run (and are freed) before it fails
  ops::mul_(y, 100);
  std::string first = error_of([&] { loss.backward(); });
  EXPECT_CONTAINS(first, "a tensor saved for ExpBackward was modified in place");
  std::string second = error_of([&] { loss.backward(); });
  EXPECT_CONTAINS(second, first);
  EXPECT_EQ(second.find("second time"), std::string::npos) << second;
  EXPECT_FALSE(x.grad().defined());
}

TEST(AutogradFailure, RetryAfterAThrowingBackwardReportsTheSameError) {
  Tensor x = leaf({1, 2});
  Tensor w = leaf({3, 4});
  Tensor loss = sum(throwing_identity(x * w) * 3.0);
  std::string first = error_of([&] { loss.backward(); });
  EXPECT_CONTAINS(first, "ThrowingBackward: deliberate failure");
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "ThrowingBackward: deliberate failure");
  // And a third time, from the node that threw.
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "ThrowingBackward: deliberate failure");

  // With retain_graph nothing is freed: each try runs up to the failing node again.
  Tensor kept = sum(throwing_identity(x) * 3.0);
  EXPECT_CONTAINS(error_of([&] { kept.backward(Tensor(), true); }), "ThrowingBackward: deliberate failure");
  EXPECT_CONTAINS(error_of([&] { kept.backward(Tensor(), true); }), "ThrowingBackward: deliberate failure");
}

TEST(AutogradFailure, RetryAfterAHookThrewReportsTheSameError) {
  Tensor x = leaf({1, 2});
  x.register_post_accumulate_grad_hook([](const Tensor&) { BRAID_FAIL("hook: deliberate failure"); });
  Tensor loss = sum(exp(x) * 2.0);
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "hook: deliberate failure");
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "hook: deliberate failure");
}

TEST(AutogradFailure, ASuccessfulPassThenASecondOneStillSaysSecondTime) {
  Tensor x = leaf({1, 2});
  Tensor loss = sum(exp(x) * 2.0);
  loss.backward();
  EXPECT_CONTAINS(error_of([&] { loss.backward(); }), "second time");
}

TEST(AutogradFailure, TheThreadCanRunAnotherBackwardAfterAFailure) {
  Tensor x = leaf({1, 2});
  Tensor bad = sum(throwing_identity(x));
  EXPECT_THROW(bad.backward(), Error);
  sum(x * x).backward();
  EXPECT_EQ(x.grad().to_vector<double>(), (std::vector<double>{2, 4}));
}
