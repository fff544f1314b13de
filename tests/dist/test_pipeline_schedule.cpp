// Pipeline schedules as data, without a model or any communication (every rank runs the same checks): the text and
// CSV forms, the provided schedules (each validates, holds its activation bound, and simulates to its bubble), and
// the validator's rejection of broken schedules with the rank and the action named.
#include <braid/braid.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <initializer_list>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace braid {
namespace {

using dist::Action;
using dist::ActionKind;
using dist::Schedule;

const std::vector<int> kRanks{2, 3, 4, 8};
const std::vector<int> kMicrobatches{1, 2, 4, 8, 13};

struct Generated {
  std::string name;
  Schedule schedule;
};

// Every provided schedule for every size of the issue (interleaved only where M is a multiple of p).
std::vector<Generated> all_schedules() {
  std::vector<Generated> out;
  for (int p : kRanks) {
    for (int m : kMicrobatches) {
      const std::string sizes = "(p=" + std::to_string(p) + ", M=" + std::to_string(m);
      out.push_back({"gpipe" + sizes + ")", dist::gpipe(p, m)});
      out.push_back({"1f1b" + sizes + ")", dist::one_f_one_b(p, m)});
      out.push_back({"zb-h1" + sizes + ")", dist::zero_bubble_h1(p, m)});
      for (int v : {1, 2})
        if (v == 1 || m % p == 0)
          out.push_back(
              {"interleaved" + sizes + ", v=" + std::to_string(v) + ")", dist::interleaved_one_f_one_b(p, v, m)});
    }
  }
  return out;
}

size_t index_of(const std::vector<Action>& list, const Action& a) {
  auto it = std::find(list.begin(), list.end(), a);
  EXPECT_NE(it, list.end()) << a;
  return static_cast<size_t>(it - list.begin());
}

void remove_action(std::vector<Action>& list, const Action& a) { list.erase(list.begin() + index_of(list, a)); }

// The message validate() throws, or "" when it accepts the schedule.
std::string rejection(const Schedule& s, std::optional<int> bound = std::nullopt,
                      dist::P2POrdering ordering = dist::P2POrdering::Tagged) {
  try {
    dist::validate(s, bound, ordering);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_contains(const std::string& text, const std::string& part) {
  EXPECT_NE(text.find(part), std::string::npos) << "'" << part << "' not in: " << text;
}

TEST(PipelineSchedule, ActionTextRoundTrip) {
  const std::vector<std::pair<Action, std::string>> cases{{{ActionKind::Forward, 0, 3}, "0F3"},
                                                          {{ActionKind::BackwardInput, 1, 2}, "1I2"},
                                                          {{ActionKind::BackwardWeight, 1, 2}, "1W2"},
                                                          {{ActionKind::FullBackward, 12, 10}, "12B10"},
                                                          {{ActionKind::SendActivation, 0, 3}, "0SEND_F3"},
                                                          {{ActionKind::RecvActivation, 1, 3}, "1RECV_F3"},
                                                          {{ActionKind::SendGradient, 2, 0}, "2SEND_B0"},
                                                          {{ActionKind::RecvGradient, 1, 0}, "1RECV_B0"}};
  for (const auto& [action, text] : cases) {
    EXPECT_EQ(dist::to_string(action), text);
    EXPECT_EQ(dist::parse_action(text), action) << text;
  }
  EXPECT_EQ(dist::parse_action(" 3F4 "), (Action{ActionKind::Forward, 3, 4}));
  for (const char* bad : {"", "F3", "0X3", "0F", "0F3x", "0SEND3", "-1F2"}) {
    try {
      dist::parse_action(bad);
      ADD_FAILURE() << "parse_action accepted '" << bad << "'";
    } catch (const Error& e) {
      expect_contains(e.what(), std::string("'") + bad + "'");
    }
  }
}

TEST(PipelineSchedule, CsvRoundTripIsIdentity) {
  for (const auto& [name, schedule] : all_schedules()) {
    const std::string csv = dist::to_csv(schedule);
    EXPECT_EQ(dist::from_csv(csv), schedule) << name;
    EXPECT_EQ(dist::to_csv(dist::from_csv(csv)), csv) << name;
  }
  const Schedule s = dist::interleaved_one_f_one_b(2, 2, 4);
  const std::string path = testing::TempDir() + "braid_pipeline_schedule_" + std::to_string(::getpid()) + ".csv";
  dist::write_csv(s, path);
  EXPECT_EQ(dist::read_csv(path), s);
  std::remove(path.c_str());
}

TEST(PipelineSchedule, CsvReadsBlankCellsAndInfersSizes) {
  const Schedule s = dist::from_csv("0F0, ,0SEND_F0,,0RECV_B0,0B0\r\n1RECV_F0,1F0,1B0,1SEND_B0\n");
  EXPECT_EQ(s.num_ranks, 2);
  EXPECT_EQ(s.stages_per_rank, 1);
  EXPECT_EQ(s.num_microbatches, 1);
  EXPECT_EQ(s, dist::one_f_one_b(2, 1));
}

TEST(PipelineSchedule, CsvErrorNamesLineColumnAndCell) {
  try {
    dist::from_csv("0F0,0SEND_F0\n1RECV_F0,1G0,1B0\n");
    ADD_FAILURE() << "from_csv accepted a bad cell";
  } catch (const Error& e) {
    expect_contains(e.what(), "line 2 (rank 1), column 2, cell '1G0'");
  }
}

TEST(PipelineSchedule, InterleavedNeedsMicrobatchesMultipleOfRanks) {
  try {
    dist::interleaved_one_f_one_b(4, 2, 6);
    ADD_FAILURE() << "interleaved_one_f_one_b accepted M = 6 on 4 ranks";
  } catch (const Error& e) {
    expect_contains(e.what(), "num_microbatches (6) must be a multiple of num_ranks (4)");
  }
  EXPECT_EQ(dist::interleaved_one_f_one_b(4, 1, 6), dist::one_f_one_b(4, 6));
}

TEST(PipelineSchedule, EveryProvidedScheduleValidates) {
  for (const auto& [name, schedule] : all_schedules()) EXPECT_EQ(rejection(schedule), "") << name;
  // One rank: the stages hand over in place, with no sends or receives.
  for (const Schedule& s : {dist::gpipe(1, 3), dist::zero_bubble_h1(1, 3), dist::interleaved_one_f_one_b(1, 3, 2)}) {
    EXPECT_EQ(rejection(s), "");
    for (const Action& a : s.actions[0]) EXPECT_TRUE(dist::is_compute(a.kind)) << a;
    EXPECT_NEAR(dist::simulate(s).bubble_fraction, 0.0, 1e-12);
  }
}

TEST(PipelineSchedule, ActivationBoundsHeld) {
  for (int p : kRanks) {
    for (int m : kMicrobatches) {
      const auto peak = [](const Schedule& s, int bound) { return dist::validate(s, bound).peak_in_flight; };
      EXPECT_EQ(peak(dist::gpipe(p, m), m)[0], m);
      EXPECT_EQ(peak(dist::one_f_one_b(p, m), p)[0], std::min(p, m));
      EXPECT_EQ(peak(dist::zero_bubble_h1(p, m), p)[0], std::min(p, m));
      for (int r = 0; r < p; ++r) EXPECT_LE(peak(dist::one_f_one_b(p, m), p)[r], std::min(p - r, m));
      if (m % p != 0) continue;
      // Megatron's warm-up on the first rank: (v - 1) p + 2 (p - 1) forwards, then one more before the first B.
      const int bound = std::min(2 * m, p + 2 * (p - 1) + 1);
      EXPECT_EQ(peak(dist::interleaved_one_f_one_b(p, 2, m), bound)[0], bound) << p << " " << m;
    }
  }
  expect_contains(rejection(dist::gpipe(4, 8), 4),
                  "rank 0, action 8 (0F4) holds 5 activations, over the bound of 4 "
                  "(the rank's peak is 8)");
}

TEST(PipelineSimulator, GPipeAndOneFOneBBubbleIsTheFormula) {
  for (int p : kRanks) {
    for (int m : kMicrobatches) {
      const double formula = double(p - 1) / (m + p - 1);
      for (const auto& costs : {dist::StageCosts{}, dist::StageCosts{1.0, 1.5, 0.5, 0.0}}) {
        const double step = (m + p - 1) * (costs.forward + costs.backward_input + costs.backward_weight);
        for (const Schedule& s : {dist::gpipe(p, m), dist::one_f_one_b(p, m)}) {
          const dist::SimulationResult r = dist::simulate(s, costs);
          EXPECT_NEAR(r.bubble_fraction, formula, 1e-9) << p << " " << m;
          EXPECT_NEAR(r.step_time, step, 1e-9) << p << " " << m;
        }
      }
    }
  }
}

TEST(PipelineSimulator, InterleavedDividesTheBubbleByV) {
  for (int p : kRanks) {
    for (int m : kMicrobatches) {
      if (m % p != 0) continue;
      const dist::SimulationResult one = dist::simulate(dist::one_f_one_b(p, m));
      for (int v : {1, 2}) {
        // The same model cut v times finer: each virtual stage costs 1/v.
        const dist::StageCosts costs{1.0 / v, 1.0 / v, 1.0 / v, 0.0};
        const dist::SimulationResult r = dist::simulate(dist::interleaved_one_f_one_b(p, v, m), costs);
        EXPECT_NEAR(r.idle_time, one.idle_time / v, 1e-9) << p << " " << m << " " << v;
        EXPECT_NEAR(r.bubble_fraction, double(p - 1) / (v * m + p - 1), 1e-9) << p << " " << m << " " << v;
      }
    }
  }
}

TEST(PipelineSimulator, ZeroBubbleH1BelowOneFOneB) {
  for (int p : kRanks) {
    for (int m : kMicrobatches) {
      const double one = dist::simulate(dist::one_f_one_b(p, m)).bubble_fraction;
      const double zb = dist::simulate(dist::zero_bubble_h1(p, m)).bubble_fraction;
      EXPECT_LT(zb, one) << p << " " << m;
      // The paper's idle time once the pipeline fills: (p - 1)(F + B - W), beside 1F1B's (p - 1)(F + B + W).
      const dist::StageCosts costs{1.0, 1.5, 0.75, 0.0};
      if (m >= p) {
        EXPECT_NEAR(dist::simulate(dist::zero_bubble_h1(p, m), costs).idle_time, (p - 1) * 1.75, 1e-9) << p << " " << m;
      }
    }
  }
}

TEST(PipelineSimulator, CommunicationDelaysTheStep) {
  const dist::SimulationResult r = dist::simulate(dist::one_f_one_b(2, 1), {1.0, 1.0, 1.0, 0.5});
  // F0 on rank 0, its activation 0.5 later on rank 1, F and B there, the gradient 0.5 later back on rank 0, B.
  EXPECT_NEAR(r.step_time, 1 + 0.5 + 3 + 0.5 + 2, 1e-12);
}

TEST(PipelineValidator, RejectsAMissingReceive) {
  Schedule s = dist::one_f_one_b(2, 4);
  auto& rank1 = s.actions[1];
  remove_action(rank1, {ActionKind::RecvActivation, 1, 0});
  expect_contains(rejection(s), "rank 1, action 0 (1F0) comes before the receive of its input 1RECV_F0");
}

TEST(PipelineValidator, RejectsAReceiveWithoutSend) {
  Schedule s = dist::one_f_one_b(2, 4);
  auto& rank0 = s.actions[0];
  remove_action(rank0, {ActionKind::SendActivation, 0, 0});
  expect_contains(rejection(s), "rank 1, action 0 (1RECV_F0): no matching 0SEND_F0 on rank 0");
}

TEST(PipelineValidator, RejectsABackwardBeforeItsForward) {
  Schedule s = dist::one_f_one_b(2, 4);
  auto& rank1 = s.actions[1];
  const Action b0{ActionKind::FullBackward, 1, 0};
  remove_action(rank1, b0);
  rank1.insert(rank1.begin(), b0);
  expect_contains(rejection(s), "rank 1, action 0 (1B0) comes before its forward 1F0");
}

TEST(PipelineValidator, RejectsAWeightBackwardBeforeItsInputBackward) {
  Schedule s = dist::zero_bubble_h1(2, 4);
  auto& rank0 = s.actions[0];
  const Action w0{ActionKind::BackwardWeight, 0, 0};
  remove_action(rank0, w0);
  const size_t at = index_of(rank0, {ActionKind::BackwardInput, 0, 0});
  rank0.insert(rank0.begin() + at, w0);
  expect_contains(rejection(s), "rank 0, action " + std::to_string(at) +
                                    " (0W0) comes before its backward for the "
                                    "input 0I0");
}

TEST(PipelineValidator, RejectsADuplicatedForward) {
  Schedule s = dist::gpipe(3, 2);
  s.actions[2].push_back({ActionKind::Forward, 2, 1});
  expect_contains(rejection(s), "rank 2, action " + std::to_string(s.actions[2].size() - 1) +
                                    " (2F1): duplicate of action " +
                                    std::to_string(index_of(s.actions[2], {ActionKind::Forward, 2, 1})));
}

TEST(PipelineValidator, RejectsAMissingBackwardAndAStageOnTheWrongRank) {
  Schedule s = dist::one_f_one_b(2, 2);
  s.actions[0].pop_back();
  expect_contains(rejection(s), "rank 0 has no 0B1");
  s = dist::one_f_one_b(2, 2);
  s.actions[0].push_back({ActionKind::Forward, 1, 0});
  expect_contains(rejection(s), "(1F0): stage 1 lives on rank 1");
}

TEST(PipelineValidator, ReportsADeadlockWithTheStuckRanks) {
  // Rank 0 sends micro-batch 1's activation only after its backward, which needs the gradient rank 1 computes from
  // that activation. Receives do not block: each rank waits at the compute that reads one.
  Schedule s = dist::one_f_one_b(2, 2);
  auto& rank0 = s.actions[0];
  const Action send1{ActionKind::SendActivation, 0, 1};
  remove_action(rank0, send1);
  const size_t wait0 = index_of(rank0, {ActionKind::FullBackward, 0, 1});
  rank0.insert(rank0.begin() + wait0 + 1, send1);
  const size_t wait1 = index_of(s.actions[1], {ActionKind::Forward, 1, 1});
  const std::string message = rejection(s);
  expect_contains(message, "deadlock");
  expect_contains(message, "rank 0, action " + std::to_string(wait0) + " (0B1) waits for 1SEND_B1");
  expect_contains(message, "rank 1, action " + std::to_string(wait1) + " (1F1) waits for 0SEND_F1");
}

// A receive posted early is no deadlock: only the compute that reads it waits for its send.
TEST(PipelineValidator, AcceptsAReceivePostedBeforeItsSend) {
  Schedule s = dist::one_f_one_b(2, 2);
  auto& rank0 = s.actions[0];
  const Action recv1{ActionKind::RecvGradient, 0, 1};
  remove_action(rank0, recv1);
  rank0.insert(rank0.begin(), recv1);
  EXPECT_EQ(rejection(s), "");
}

// Without tags (NCCL) every provided schedule still runs: each pair's messages come in one order on both sides, and
// posting each run of sends and receives as one batch cannot deadlock.
TEST(PipelineValidator, EveryProvidedSchedulePassesInOrder) {
  for (const auto& [name, schedule] : all_schedules())
    EXPECT_EQ(rejection(schedule, std::nullopt, dist::P2POrdering::InOrder), "") << name;
}

// Rank 1 posts the receive of micro-batch 1 before that of micro-batch 0, which rank 0 sends first: fine with
// tags, a mismatch in order.
TEST(PipelineValidator, InOrderRejectsReceivesInAnotherOrderThanTheSends) {
  Schedule s = dist::gpipe(2, 2);
  auto& rank1 = s.actions[1];
  const Action recv1{ActionKind::RecvActivation, 1, 1};
  remove_action(rank1, recv1);
  rank1.insert(rank1.begin(), recv1);
  EXPECT_EQ(rejection(s), "");
  expect_contains(rejection(s, std::nullopt, dist::P2POrdering::InOrder),
                  "rank 1, action 0 (1RECV_F1) is rank 1's receive number 0 from rank 0, but rank 0's send number 0 "
                  "to it is rank 0, action 1 (0SEND_F0)");
}

// Interleaved on 3 ranks (stages 0..5, rank r holds r and r + 3). Rank 0 posts micro-batch 1's activation for rank 1
// (0SEND_F1) in a batch before stage 3's gradient for rank 2 (3SEND_B0); rank 1 posts its receive of micro-batch 1
// (1RECV_F1) after the gradient 1RECV_B0, which rank 2 sends only once it has 3SEND_B0. With tags nothing waits;
// in order, 0SEND_F1 holds 3SEND_B0 back on rank 0's stream until rank 1's 1RECV_F1 starts, which rank 1's stream
// holds behind 1RECV_B0: a cycle. Every pair's messages still come in one order on both sides.
TEST(PipelineValidator, InOrderRejectsAReceivePostedBeforeASendItsPartnerNeedsFirst) {
  Schedule s;
  s.num_ranks = 3;
  s.stages_per_rank = 2;
  s.num_microbatches = 2;
  const auto parse = [](std::initializer_list<const char*> cells) {
    std::vector<Action> list;
    for (const char* c : cells) list.push_back(dist::parse_action(c));
    return list;
  };
  s.actions = {
      parse({"0F0",      "0SEND_F0", "3RECV_F0", "3F0",      "3SEND_F0", "0F1",      "0SEND_F1",
             "3RECV_B0", "3B0",      "3SEND_B0", "0RECV_B0", "0B0",      "3RECV_F1", "3F1",
             "3SEND_F1", "3RECV_B1", "3B1",      "3SEND_B1", "0RECV_B1", "0B1"}),
      parse({"1RECV_F0", "1F0",      "1SEND_F0", "4RECV_F0", "4F0",      "4SEND_F0", "4RECV_B0", "4B0",
             "4SEND_B0", "1RECV_B0", "1B0",      "1SEND_B0", "1RECV_F1", "1F1",      "1SEND_F1", "4RECV_F1",
             "4F1",      "4SEND_F1", "4RECV_B1", "4B1",      "4SEND_B1", "1RECV_B1", "1B1",      "1SEND_B1"}),
      parse({"2RECV_F0", "2F0", "2SEND_F0", "5RECV_F0", "5F0", "5B0", "5SEND_B0", "2RECV_B0", "2B0", "2SEND_B0",
             "2RECV_F1", "2F1", "2SEND_F1", "5RECV_F1", "5F1", "5B1", "5SEND_B1", "2RECV_B1", "2B1", "2SEND_B1"}),
  };
  EXPECT_EQ(rejection(s), "");
  const std::string message = rejection(s, std::nullopt, dist::P2POrdering::InOrder);
  expect_contains(message, "deadlock with in-order transport");
  expect_contains(message, "rank 0, action 6 (0SEND_F1) cannot complete: its partner rank 1, action 12 (1RECV_F1)");
}

TEST(PipelineSchedule, WithCommunicationAddsWhatComputeNeeds) {
  Schedule compute = dist::one_f_one_b(3, 4);
  for (auto& list : compute.actions)
    list.erase(std::remove_if(list.begin(), list.end(), [](const Action& a) { return !dist::is_compute(a.kind); }),
               list.end());
  EXPECT_NE(rejection(compute), "");
  EXPECT_EQ(dist::with_communication(compute), dist::one_f_one_b(3, 4));
  EXPECT_EQ(dist::with_communication(dist::one_f_one_b(3, 4)), dist::one_f_one_b(3, 4));
}

}  // namespace
}  // namespace braid
