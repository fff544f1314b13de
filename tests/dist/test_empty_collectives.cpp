// Collectives on a tensor with a zero-sized dimension (zeros({3, 0})): such a tensor is contiguous, as in PyTorch,
// so the contiguity check of every collective accepts it and the collective completes with nothing to move.
#include <gtest/gtest.h>

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "braid/dist/init.h"
#include "braid/dist/process_group.h"

namespace {

using braid::Shape;
using braid::Tensor;

TEST(EmptyCollectives, AllReduceAndBroadcastOfZeroSizedDimension) {
  auto world = braid::dist::world();
  for (const Shape& shape : {Shape{3, 0}, Shape{0}, Shape{0, 4}}) {
    Tensor t = braid::zeros(shape);
    ASSERT_NO_THROW(world->all_reduce(t)->wait()) << braid::shape_str(shape);
    ASSERT_NO_THROW(world->broadcast(t, 0)->wait()) << braid::shape_str(shape);
    EXPECT_EQ(t.shape(), shape);
    EXPECT_EQ(t.numel(), 0);
  }
}

TEST(EmptyCollectives, AllGatherOfZeroSizedDimension) {
  auto world = braid::dist::world();
  Tensor in = braid::zeros({3, 0});
  Tensor out = braid::zeros({int64_t(world->size()) * 3, 0});
  ASSERT_NO_THROW(world->all_gather(out, in)->wait());
  EXPECT_EQ(out.shape(), (Shape{int64_t(world->size()) * 3, 0}));
}

}  // namespace
