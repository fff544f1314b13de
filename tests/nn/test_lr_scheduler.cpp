// Learning-rate schedules over parameter groups: each group's rate follows the schedule from its own base lr; the
// warm-up + cosine schedule of GPT training against its formula written out by hand at the boundaries.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "../test_util.h"
#include "braid/braid.h"

using namespace braid;
using braid::test::expect_error;

namespace {

Tensor param() { return from_vector(std::vector<double>{1.0, -2.0}).requires_grad_(true); }

using Groups = std::vector<optim::ParamGroup>;

}  // namespace

// Warm-up 4, total 14, base 0.6, min 0.1; step k's rate (k = 0 before the first scheduler step):
//   k < 4:        0.6 * (k + 1) / 4
//   4 <= k <= 14: 0.1 + 0.5 * (1 + cos(pi * (k - 4) / 10)) / 2
//   k > 14:       0.1
TEST(WarmupCosineLR, ValuesAtTheBoundariesByHand) {
  optim::SGD opt({param()}, {.lr = 0.6});
  optim::WarmupCosineLR sched(opt, 4, 14, 0.1);
  std::map<int64_t, double> want = {
      {0, 0.15},  // step 0: already warming up
      {1, 0.3},
      {2, 0.45},
      {3, 0.6},                   // end of warm-up: the base rate
      {4, 0.6},                   // start of the cosine
      {6, 0.5522542485937368},    // 0.1 + 0.25 * (1 + cos(0.2 pi))
      {9, 0.35},                  // mid-cosine: halfway between base and min
      {13, 0.11223587092621162},  // 0.1 + 0.25 * (1 + cos(0.9 pi))
      {14, 0.1},                  // total_steps: min_lr
      {15, 0.1},                  // beyond
      {40, 0.1},
  };
  for (int64_t k = 0; k <= 40; ++k) {
    EXPECT_EQ(sched.last_epoch(), k);
    if (want.count(k)) {
      EXPECT_NEAR(opt.lr(), want.at(k), 1e-15) << "step " << k;
    }
    sched.step();
  }
}

TEST(WarmupCosineLR, WithoutWarmUpStartsAtTheBaseRate) {
  optim::Adam opt({param()}, {.lr = 0.2});
  optim::WarmupCosineLR sched(opt, 0, 2);
  EXPECT_EQ(opt.lr(), 0.2);
  sched.step();
  EXPECT_NEAR(opt.lr(), 0.1, 1e-16);
  sched.step();
  EXPECT_NEAR(opt.lr(), 0.0, 1e-16);
  sched.step();
  EXPECT_EQ(opt.lr(), 0.0);
}

TEST(WarmupCosineLR, ScalesEachGroupsOwnBaseRate) {
  Tensor a = param(), b = param();
  optim::AdamW opt(Groups{{{a}, {}}, {{b}, {{"lr", 4e-3}}}}, {.lr = 1e-3});
  optim::WarmupCosineLR sched(opt, 2, 6, 1e-4);
  // {step, group 0's rate, group 1's rate}
  std::vector<std::vector<double>> want = {
      {0, 5e-4, 2e-3}, {1, 1e-3, 4e-3}, {2, 1e-3, 4e-3}, {4, 1e-4 + (1e-3 - 1e-4) / 2, 1e-4 + (4e-3 - 1e-4) / 2},
      {6, 1e-4, 1e-4}, {7, 1e-4, 1e-4},
  };
  for (int64_t k = 0, w = 0; k <= 7; ++k, sched.step()) {
    if (want[w][0] != double(k)) continue;
    EXPECT_NEAR(opt.lr(0), want[w][1], 1e-18) << "step " << k;
    EXPECT_NEAR(opt.lr(1), want[w][2], 1e-18) << "step " << k;
    ++w;
  }
  EXPECT_EQ(sched.state_dict().base_lrs, (std::vector<double>{1e-3, 4e-3}));
}

TEST(WarmupCosineLR, BadArgumentsNameTheArgument) {
  optim::SGD opt({param()}, {.lr = 0.1});
  expect_error([&] { optim::WarmupCosineLR(opt, -1, 10); }, {"WarmupCosineLR", "warmup_steps", "-1"});
  expect_error([&] { optim::WarmupCosineLR(opt, 10, 10); }, {"WarmupCosineLR", "total_steps", "warmup_steps", "10"});
  expect_error([&] { optim::WarmupCosineLR(opt, 0, 0); }, {"total_steps"});
  expect_error([&] { optim::WarmupCosineLR(opt, 1, 10, -0.5); }, {"WarmupCosineLR", "min_lr", "-0.5"});
  expect_error([&] { optim::WarmupCosineLR(opt, 1, 10, NAN); }, {"min_lr"});
  EXPECT_EQ(opt.lr(), 0.1) << "a rejected schedule leaves the rate alone";
}

TEST(WarmupCosineLR, StateDictRoundTripsAndContinues) {
  Tensor a = param(), b = param();
  optim::SGD opt(Groups{{{a}, {}}, {{b}, {{"lr", 0.5}}}}, {.lr = 0.1});
  optim::WarmupCosineLR sched(opt, 3, 20, 0.01);
  for (int k = 0; k < 5; ++k) sched.step();
  optim::LRSchedulerState s = sched.state_dict();
  EXPECT_EQ(s.last_epoch, 5);
  EXPECT_EQ(s.base_lrs, (std::vector<double>{0.1, 0.5}));
  EXPECT_EQ(s.options, (std::map<std::string, double>{{"warmup_steps", 3}, {"total_steps", 20}, {"min_lr", 0.01}}));

  Tensor c = param(), d = param();
  optim::SGD other(Groups{{{c}, {}}, {{d}, {}}}, {.lr = 7});
  optim::WarmupCosineLR resumed(other, 1, 3);
  resumed.load_state_dict(s);
  EXPECT_EQ(resumed.last_epoch(), 5);
  for (int k = 0; k < 20; ++k) {
    sched.step();
    resumed.step();
    EXPECT_EQ(other.lr(0), opt.lr(0)) << "step " << sched.last_epoch();
    EXPECT_EQ(other.lr(1), opt.lr(1)) << "step " << sched.last_epoch();
  }

  struct Case {
    std::function<void(optim::LRSchedulerState&)> edit;
    std::vector<std::string> expect;
  };
  std::vector<Case> cases = {
      {[](auto& s) { s.base_lrs.pop_back(); }, {"WarmupCosineLR::load_state_dict", "1 parameter groups", "has 2"}},
      {[](auto& s) { s.base_lrs[1] = -1; }, {"parameter group 1", "learning rate"}},
      {[](auto& s) { s.options.at("total_steps") = 3; }, {"total_steps", "warmup_steps"}},
      {[](auto& s) { s.options.at("warmup_steps") = 2.5; }, {"'warmup_steps'", "whole number"}},
      {[](auto& s) { s.options.at("min_lr") = -1; }, {"min_lr"}},
      {[](auto& s) { s.options.erase("min_lr"); }, {"missing 'min_lr'"}},
  };
  const optim::LRSchedulerState now = resumed.state_dict();
  for (size_t k = 0; k < cases.size(); ++k) {
    SCOPED_TRACE("case " + std::to_string(k));
    optim::LRSchedulerState bad = s;
    cases[k].edit(bad);
    expect_error([&] { resumed.load_state_dict(bad); }, cases[k].expect);
    EXPECT_EQ(resumed.state_dict().last_epoch, now.last_epoch);
    EXPECT_EQ(resumed.state_dict().base_lrs, now.base_lrs);
    EXPECT_EQ(resumed.state_dict().options, now.options);
  }
}

// The epoch schedules scale each group's own base rate too (PyTorch's base_lrs).
TEST(LRSchedulerGroups, StepLRAndCosineAnnealingScaleEachGroupsBaseRate) {
  Tensor a = param(), b = param();
  optim::SGD opt(Groups{{{a}, {}}, {{b}, {{"lr", 0.1}}}}, {.lr = 0.4});
  optim::StepLR step(opt, 2, 0.5);
  step.step();
  EXPECT_EQ(opt.lr(0), 0.4);
  EXPECT_EQ(opt.lr(1), 0.1);
  step.step();
  EXPECT_DOUBLE_EQ(opt.lr(0), 0.2);
  EXPECT_DOUBLE_EQ(opt.lr(1), 0.05);

  Tensor c = param(), d = param();
  optim::Adam adam(Groups{{{c}, {{"lr", 0.3}}}, {{d}, {}}}, {.lr = 0.1});
  optim::CosineAnnealingLR cosine(adam, 4, 0.02);
  cosine.step();
  cosine.step();
  EXPECT_NEAR(adam.lr(0), 0.02 + 0.28 / 2, 1e-16);
  EXPECT_NEAR(adam.lr(1), 0.02 + 0.08 / 2, 1e-16);
  EXPECT_EQ(cosine.state_dict().base_lrs, (std::vector<double>{0.3, 0.1}));
}
