// A tensor with no elements is contiguous whatever its strides, as in PyTorch: collectives and kernels that need a
// contiguous buffer then take it, and contiguous() returns it unchanged.
#include <gtest/gtest.h>

#include "braid/core/core.h"

using namespace braid;

TEST(EmptyContiguous, ZeroSizedDimensionIsContiguous) {
  for (const Shape& shape : {Shape{3, 0}, Shape{0, 3}, Shape{0}, Shape{2, 0, 4}, Shape{0, 0}}) {
    Tensor t = zeros(shape);
    EXPECT_EQ(t.numel(), 0) << shape_str(shape);
    EXPECT_TRUE(t.is_contiguous()) << shape_str(shape) << " strides " << shape_str(t.strides());
    Tensor c = ops::contiguous(t);
    EXPECT_TRUE(c.is_contiguous()) << shape_str(shape);
    EXPECT_TRUE(c.same(t)) << shape_str(shape) << ": contiguous() copied a tensor that needed no copy";
    EXPECT_EQ(c.shape(), shape);
  }
}

TEST(EmptyContiguous, EmptyViewsAreContiguous) {
  Tensor a = zeros({4, 5});
  Tensor none = ops::narrow(a, 1, 2, 0);  // strides of the 4 x 5 parent, no element
  EXPECT_EQ(none.shape(), (Shape{4, 0}));
  EXPECT_TRUE(none.is_contiguous());
  Tensor t = ops::transpose(zeros({0, 3}), 0, 1);
  EXPECT_EQ(t.shape(), (Shape{3, 0}));
  EXPECT_TRUE(t.is_contiguous());
}

TEST(EmptyContiguous, NonEmptyLayoutsUnchanged) {
  EXPECT_TRUE(zeros({3, 1}).is_contiguous());
  EXPECT_FALSE(ops::transpose(zeros({2, 3}), 0, 1).is_contiguous());
  EXPECT_FALSE(ops::narrow(zeros({4, 5}), 1, 1, 2).is_contiguous());
}

// An empty tensor's strides still multiply its other dimensions: a shape whose strides overflow int64 is refused
// (its strides used to wrap around silently).
TEST(EmptyContiguous, StridesBeyondInt64AreRefused) {
  const int64_t big = int64_t(1) << 40;
  try {
    zeros({0, big, big});
    ADD_FAILURE() << "zeros({0, 2^40, 2^40}) was accepted";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("more elements than int64 can count"), std::string::npos) << e.what();
  }
  EXPECT_EQ(zeros({0, big}).strides(), (Shape{big, 1}));
}
