// Parameter initialisers write in place: each bumps the tensor's version once (views included), and an
// initialiser refuses a tensor whose elements share memory before it draws from the generator.
#include <gtest/gtest.h>

#include <functional>
#include <vector>

#include "../test_util.h"
#include "braid/nn/init.h"

using namespace braid;
using braid::test::expect_error;

TEST(InitInPlace, EachInitialiserBumpsTheVersionOnce) {
  Tensor w = zeros({3, 4});
  Generator g(1);
  std::vector<std::function<void()>> inits{
      [&] { nn::init::uniform_(w, -1, 1, &g); },
      [&] { nn::init::normal_(w, 0, 1, &g); },
      [&] { nn::init::constant_(w, 0.5); },
      [&] { nn::init::zeros_(w); },
      [&] { nn::init::ones_(w); },
      [&] { nn::init::kaiming_uniform_(w, 0, &g); },
      [&] { nn::init::xavier_uniform_(w, 1, &g); },
  };
  for (size_t i = 0; i < inits.size(); ++i) {
    inits[i]();
    EXPECT_EQ(w.version(), i + 1) << "initialiser " << i;
  }
}

TEST(InitInPlace, WritesThroughAViewAndBumpsItsBase) {
  Tensor w = zeros({2, 3});
  nn::init::constant_(ops::transpose(w, 0, 1), 2);
  EXPECT_EQ(w.version(), 1u);
  EXPECT_EQ(w.to_vector<float>(), std::vector<float>(6, 2.0f));
}

TEST(InitInPlace, RefusesAnExpandedTensorBeforeDrawing) {
  Tensor base = zeros({1, 4});
  Tensor e = ops::expand(base, {3, 4});
  Generator g(7), fresh(7);
  expect_error([&] { nn::init::uniform_(e, 0, 1, &g); }, {"nn::init::uniform_", "internal overlap"});
  expect_error([&] { nn::init::normal_(e, 0, 1, &g); }, {"nn::init::normal_", "internal overlap"});
  expect_error([&] { nn::init::zeros_(e); }, {"fill_", "internal overlap"});
  EXPECT_EQ(base.version(), 0u);
  EXPECT_EQ(rand({4}, {}, &g).to_vector<float>(), rand({4}, {}, &fresh).to_vector<float>());
}
