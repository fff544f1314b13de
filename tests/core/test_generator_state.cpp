// Generator::state / set_state and get_rng_state / set_rng_state: a restored generator draws exactly what the
// original would have, including a cached second normal (what a resumed training run needs of its RNGs).
#include <gtest/gtest.h>

#include <vector>

#include "../test_util.h"
#include "braid/core/creation.h"
#include "braid/core/random.h"

using namespace braid;
using braid::test::expect_error;

namespace {

std::vector<double> draws(Generator& g, int n) {
  std::vector<double> out;
  for (int i = 0; i < n; ++i) out.push_back(i % 3 == 0 ? g.uniform() : g.normal());
  return out;
}

}  // namespace

TEST(GeneratorState, RestoredGeneratorDrawsTheSameSequence) {
  Generator g(42);
  g.uniform();
  g.normal();  // leaves the second normal of its pair cached: the state must carry it
  const std::string state = g.state();
  const std::vector<double> expected = draws(g, 50);

  Generator other(7);
  other.normal();
  other.set_state(state);
  EXPECT_EQ(draws(other, 50), expected);
  // A state is a snapshot: the original keeps its own place.
  EXPECT_NE(g.state(), state);
}

TEST(GeneratorState, DefaultGeneratorRoundTripsThroughRngState) {
  manual_seed(3);
  randn({5});
  const std::string state = get_rng_state();
  const std::vector<float> expected = randn({17}).to_vector<float>();
  manual_seed(99);
  set_rng_state(state);
  EXPECT_EQ(randn({17}).to_vector<float>(), expected);
}

TEST(GeneratorState, RejectsTextThatIsNotAState) {
  Generator g(5);
  const std::string before = g.state();
  expect_error([&] { g.set_state("not a state"); }, {"Generator::set_state", "not a state"});
  expect_error([&] { g.set_state(before.substr(0, before.size() / 2)); }, {"Generator::set_state"});
  expect_error([&] { g.set_state(before + " 12"); }, {"Generator::set_state"});
  EXPECT_EQ(g.state(), before) << "a refused state changes nothing";
}
