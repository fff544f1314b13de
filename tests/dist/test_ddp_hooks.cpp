// DistributedDataParallel removes the gradient hooks it puts on the parameters when it goes: wrapping one model
// again and again leaves none behind, and the wrapper made last is the only one that acts. Runs on any number of
// ranks (each construction broadcasts the parameters on all of them).
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <vector>

namespace braid {
namespace {

struct TwoLayer : nn::Module {
  nn::Linear fc1 = register_module("fc1", nn::Linear(4, 8));
  nn::Linear fc2 = register_module("fc2", nn::Linear(8, 2));
  Tensor forward(const Tensor& x) { return fc2(relu(fc1(x))); }
};

size_t hooks_on(const Tensor& p) { return autograd_meta(p).post_accumulate_grad_hooks.size(); }

TEST(DistributedDataParallelHooks, AThousandWrappersLeaveNoHookOnTheParameters) {
  TwoLayer model;
  std::vector<Tensor> params = model.parameters();
  ASSERT_EQ(params.size(), 4u);
  for (int i = 0; i < 1000; ++i) {
    dist::DistributedDataParallel ddp(model);
    if (i == 0) {
      for (const auto& p : params) EXPECT_EQ(hooks_on(p), 1u);
    }
  }
  for (const auto& p : params) EXPECT_EQ(hooks_on(p), 0u);

  // The next wrapper's backward averages across the ranks: every rank sees the same gradient, ones * rows.
  dist::DistributedDataParallel ddp(model);
  for (const auto& p : params) EXPECT_EQ(hooks_on(p), 1u);
  int calls = 0;
  autograd::ScopedHookHandle counter =
      params.back().register_post_accumulate_grad_hook([&](const Tensor&) { ++calls; });
  sum(model.forward(ones({3, 4}))).backward();
  EXPECT_EQ(calls, 1);
  EXPECT_EQ(params.back().grad().to_vector<float>(), (std::vector<float>{3, 3}));  // fc2's bias
}

}  // namespace
}  // namespace braid
