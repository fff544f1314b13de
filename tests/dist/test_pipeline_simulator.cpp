// The simulator on a machine with fewer cores than ranks (SimulationOptions::cores): ranks that compute at the same
// time share the cores, and enough cores change nothing. Every rank runs the same checks, without communication.
#include <braid/braid.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <numeric>
#include <string>
#include <utility>
#include <vector>

namespace braid {
namespace {

using dist::Action;
using dist::ActionKind;
using dist::Schedule;

struct Named {
  std::string name;
  Schedule schedule;
};

std::vector<Named> provided_schedules() {
  std::vector<Named> out;
  for (int p : {2, 3, 4, 8}) {
    for (int m : {1, 2, 4, 8, 13}) {
      const std::string sizes = "(p=" + std::to_string(p) + ", M=" + std::to_string(m) + ")";
      out.push_back({"gpipe" + sizes, dist::gpipe(p, m)});
      out.push_back({"1f1b" + sizes, dist::one_f_one_b(p, m)});
      out.push_back({"zb-h1" + sizes, dist::zero_bubble_h1(p, m)});
      if (m % p == 0) out.push_back({"interleaved v=2" + sizes, dist::interleaved_one_f_one_b(p, 2, m)});
    }
  }
  return out;
}

double total_compute(const dist::SimulationResult& r) {
  return std::accumulate(r.compute_time.begin(), r.compute_time.end(), 0.0);
}

// The (start, finish) of `action` in rank's list.
std::pair<double, double> interval(const Schedule& s, const dist::SimulationResult& r, int rank, const Action& action) {
  const auto& list = s.actions[size_t(rank)];
  const auto it = std::find(list.begin(), list.end(), action);
  EXPECT_NE(it, list.end()) << action;
  const size_t i = size_t(it - list.begin());
  return {r.start[size_t(rank)][i], r.finish[size_t(rank)][i]};
}

TEST(PipelineSimulatorCores, EnoughCoresEqualOneCorePerRank) {
  const dist::StageCosts costs{1.0, 1.5, 0.5, 0.25};
  for (const Named& n : provided_schedules()) {
    const dist::SimulationResult own = dist::simulate(n.schedule, costs);
    for (int cores : {n.schedule.num_ranks, n.schedule.num_ranks + 3}) {
      const dist::SimulationResult shared = dist::simulate(n.schedule, costs, {cores});
      EXPECT_EQ(shared.step_time, own.step_time) << n.name << " on " << cores << " cores";
      EXPECT_EQ(shared.bubble_fraction, own.bubble_fraction) << n.name;
      EXPECT_EQ(shared.start, own.start) << n.name;
      EXPECT_EQ(shared.finish, own.finish) << n.name;
    }
  }
}

// Without communication cost some rank can always compute until the step ends (a valid schedule never waits on
// every rank at once), so one core is never idle: the step is all the ranks' compute one after the other.
TEST(PipelineSimulatorCores, OneCoreRunsTheTotalCompute) {
  for (const dist::StageCosts& costs : {dist::StageCosts{}, dist::StageCosts{1.0, 1.5, 0.5, 0.0}}) {
    for (const Named& n : provided_schedules()) {
      const dist::SimulationResult r = dist::simulate(n.schedule, costs, {1});
      const double total = total_compute(r);
      EXPECT_NEAR(r.step_time, total, 1e-9 * total) << n.name;
      // The compute counts the costs, not the stretched time, so sharing shows up as bubble.
      EXPECT_EQ(r.compute_time, dist::simulate(n.schedule, costs).compute_time) << n.name;
      const double p = n.schedule.num_ranks;
      EXPECT_NEAR(r.bubble_fraction, 1.0 - 1.0 / p, 1e-9) << n.name;
    }
  }
}

// Fewer cores than ranks never beat one core per rank, nor the total compute spread over the cores.
TEST(PipelineSimulatorCores, FewerCoresAreBoundedBelow) {
  const dist::StageCosts costs{1.0, 1.5, 0.5, 0.25};
  for (const Named& n : provided_schedules()) {
    const dist::SimulationResult own = dist::simulate(n.schedule, costs);
    for (int cores = 1; cores < n.schedule.num_ranks; ++cores) {
      const dist::SimulationResult r = dist::simulate(n.schedule, costs, {cores});
      EXPECT_GE(r.step_time, own.step_time - 1e-9) << n.name << " on " << cores << " cores";
      EXPECT_GE(r.step_time, total_compute(r) / cores - 1e-9) << n.name << " on " << cores << " cores";
    }
  }
}

TEST(PipelineSimulatorCores, TwoRanksShareOneCore) {
  // 1F1B on 2 ranks, 2 micro-batches, F = 1, B = 2. Rank 0 runs F0 F1 B0 B1, rank 1 F0 B0 F1 B1.
  const Schedule s = dist::one_f_one_b(2, 2);
  const dist::SimulationResult r = dist::simulate(s, {1.0, 1.0, 1.0, 0.0}, {1});
  using P = std::pair<double, double>;
  // Alone at first; then rank 0's F1 and rank 1's F0 share the core, each at half speed.
  EXPECT_EQ(interval(s, r, 0, {ActionKind::Forward, 0, 0}), P(0, 1));
  EXPECT_EQ(interval(s, r, 0, {ActionKind::Forward, 0, 1}), P(1, 3));
  EXPECT_EQ(interval(s, r, 1, {ActionKind::Forward, 1, 0}), P(1, 3));
  // Rank 0 waits for the gradient while rank 1's B0 has the core to itself.
  EXPECT_EQ(interval(s, r, 1, {ActionKind::FullBackward, 1, 0}), P(3, 5));
  // Rank 0's B0 (2) shares with rank 1's F1 (1), which ends at 7; B0 then shares its last unit with rank 1's B1.
  EXPECT_EQ(interval(s, r, 1, {ActionKind::Forward, 1, 1}), P(5, 7));
  EXPECT_EQ(interval(s, r, 0, {ActionKind::FullBackward, 0, 0}), P(5, 9));
  // Rank 1's B1 did one unit by 9 at half speed, then its last alone.
  EXPECT_EQ(interval(s, r, 1, {ActionKind::FullBackward, 1, 1}), P(7, 10));
  EXPECT_EQ(interval(s, r, 0, {ActionKind::FullBackward, 0, 1}), P(10, 12));
  EXPECT_EQ(r.step_time, 12.0);
  EXPECT_EQ(r.compute_time, (std::vector<double>{6.0, 6.0}));
  EXPECT_EQ(r.bubble_fraction, 0.5);
  // With a core each the same schedule takes 9.
  EXPECT_EQ(dist::simulate(s, {1.0, 1.0, 1.0, 0.0}).step_time, 9.0);
}

TEST(PipelineSimulatorCores, ThreeRanksOnTwoCores) {
  // GPipe, 3 ranks, 1 micro-batch is a chain: never two ranks at once, so two cores change nothing.
  const dist::StageCosts costs{1.0, 1.0, 1.0, 0.0};
  EXPECT_EQ(dist::simulate(dist::gpipe(3, 1), costs, {2}).step_time, 9.0);
  // GPipe, 3 ranks, 3 micro-batches, F = 1, B = 2: F0 on rank 0 alone [0, 1]; F1 on rank 0 and F0 on rank 1 share
  // nothing (2 cores) [1, 2]; then three forwards at once, each at 2/3 speed, end at 3.5.
  const Schedule s = dist::gpipe(3, 3);
  const dist::SimulationResult r = dist::simulate(s, costs, {2});
  using P = std::pair<double, double>;
  EXPECT_EQ(interval(s, r, 0, {ActionKind::Forward, 0, 1}), P(1, 2));
  EXPECT_EQ(interval(s, r, 1, {ActionKind::Forward, 1, 0}), P(1, 2));
  for (const auto& [rank, action] :
       {std::pair<int, Action>{0, {ActionKind::Forward, 0, 2}}, std::pair<int, Action>{1, {ActionKind::Forward, 1, 1}},
        std::pair<int, Action>{2, {ActionKind::Forward, 2, 0}}}) {
    const auto [start, finish] = interval(s, r, rank, action);
    EXPECT_EQ(start, 2.0) << action;
    EXPECT_NEAR(finish, 3.5, 1e-12) << action;
  }
}

TEST(PipelineSimulatorCores, NegativeCoresIsAnError) {
  try {
    dist::simulate(dist::one_f_one_b(2, 2), {}, {-1});
    FAIL() << "simulate accepted cores = -1";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("simulate: SimulationOptions::cores must be >= 0 (0: one per rank), got -1"),
              std::string::npos)
        << e.what();
  }
}

}  // namespace
}  // namespace braid
