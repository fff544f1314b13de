#include "braid/dist/pipeline_schedules.h"

#include <algorithm>
#include <cstddef>
#include <map>
#include <set>
#include <tuple>
#include <utility>
#include <vector>

#include "braid/core/error.h"
#include "braid/dist/pipeline_simulator.h"

namespace braid::dist {
namespace {

void check_sizes(const char* op, int num_ranks, int stages_per_rank, int num_microbatches) {
  BRAID_CHECK(num_ranks >= 1, op, ": num_ranks must be at least 1, got ", num_ranks);
  BRAID_CHECK(stages_per_rank >= 1, op, ": stages_per_rank must be at least 1, got ", stages_per_rank);
  BRAID_CHECK(num_microbatches >= 1, op, ": num_microbatches must be at least 1, got ", num_microbatches);
}

Schedule empty_schedule(int num_ranks, int stages_per_rank, int num_microbatches) {
  Schedule schedule;
  schedule.num_ranks = num_ranks;
  schedule.stages_per_rank = stages_per_rank;
  schedule.num_microbatches = num_microbatches;
  schedule.actions.resize(num_ranks);
  return schedule;
}

// The compute order of 1F1B on one rank, with `backward` as the backward kind; ZB-H1 adds its W afterwards.
std::vector<Action> one_f_one_b_order(int rank, int num_ranks, int num_microbatches, ActionKind backward) {
  const int warmup = std::min(num_ranks - rank - 1, num_microbatches);
  std::vector<Action> order;
  for (int m = 0; m < warmup; ++m) order.push_back({ActionKind::Forward, rank, m});
  for (int i = 0; i < num_microbatches - warmup; ++i) {
    order.push_back({ActionKind::Forward, rank, warmup + i});
    order.push_back({backward, rank, i});
  }
  for (int m = num_microbatches - warmup; m < num_microbatches; ++m) order.push_back({backward, rank, m});
  return order;
}

bool crosses_ranks(const Schedule& schedule, int from_stage, int to_stage) {
  return to_stage >= 0 && to_stage < schedule.num_stages() &&
         schedule.rank_of_stage(from_stage) != schedule.rank_of_stage(to_stage);
}

// A message's place in time: when its send is issued, then which message (the same on both of its ranks).
using MessageTime = std::tuple<double, int, int, int>;  // (time, kind of the send, sending stage, micro-batch)

MessageTime message_time(const Action& a, double time) {
  if (a.kind == ActionKind::RecvActivation) return {time, int(ActionKind::SendActivation), a.stage - 1, a.microbatch};
  if (a.kind == ActionKind::RecvGradient) return {time, int(ActionKind::SendGradient), a.stage + 1, a.microbatch};
  return {time, int(a.kind), a.stage, a.microbatch};
}

// Without tags (NCCL) a pair's messages match in order and a rank's batches of sends and receives run one after
// another, so every rank must meet its messages in one global order. Times the schedule (simulate(), unit costs),
// then posts each receive where its rank stands when the send is issued (before the first compute starting at or
// after that time) and orders each run of sends and receives by the time of their messages. The compute order and
// the sends stay; receives do not block, so the step takes as long as before.
Schedule receives_in_message_order(const Schedule& schedule) {
  const SimulationResult timing = simulate(schedule);
  std::map<std::tuple<int, int, int>, double> sent_at;  // (kind, stage, micro-batch) of each send
  for (size_t rank = 0; rank < schedule.actions.size(); ++rank)
    for (size_t i = 0; i < schedule.actions[rank].size(); ++i) {
      const Action& a = schedule.actions[rank][i];
      if (a.kind == ActionKind::SendActivation || a.kind == ActionKind::SendGradient)
        sent_at[{int(a.kind), a.stage, a.microbatch}] = timing.finish[rank][i];
    }
  Schedule out = schedule;
  for (size_t rank = 0; rank < schedule.actions.size(); ++rank) {
    const auto& list = schedule.actions[rank];
    std::vector<size_t> computes;  // their indices in the list
    for (size_t i = 0; i < list.size(); ++i)
      if (is_compute(list[i].kind)) computes.push_back(i);
    // [k]: the sends and receives posted before the k-th compute (k = computes.size(): after the last), with times.
    std::vector<std::vector<std::pair<MessageTime, Action>>> before(computes.size() + 1);
    for (size_t i = 0; i < list.size(); ++i) {
      const Action& a = list[i];
      if (is_compute(a.kind)) continue;
      if (a.kind == ActionKind::SendActivation || a.kind == ActionKind::SendGradient) {
        const size_t next =
            size_t(std::find_if(computes.begin(), computes.end(), [&](size_t c) { return c > i; }) - computes.begin());
        before[next].push_back({message_time(a, timing.finish[rank][i]), a});
        continue;
      }
      const MessageTime t = message_time(a, 0.0);
      const double time = sent_at.at({std::get<1>(t), std::get<2>(t), std::get<3>(t)});
      size_t next = 0;
      while (next < computes.size() && computes[next] < i && timing.start[rank][computes[next]] < time) ++next;
      before[next].push_back({message_time(a, time), a});
    }
    std::vector<Action>& placed = out.actions[rank];
    placed.clear();
    for (size_t k = 0; k <= computes.size(); ++k) {
      std::stable_sort(before[k].begin(), before[k].end(),
                       [](const auto& x, const auto& y) { return x.first < y.first; });
      for (const auto& entry : before[k]) placed.push_back(entry.second);
      if (k < computes.size()) placed.push_back(list[computes[k]]);
    }
  }
  return out;
}

}  // namespace

Schedule with_communication(const Schedule& schedule) {
  Schedule out = schedule;
  std::set<std::tuple<int, int, int>> present;  // (kind, stage, microbatch) of the sends and receives already there
  for (const auto& rank_actions : schedule.actions)
    for (const Action& a : rank_actions)
      if (!is_compute(a.kind)) present.insert({static_cast<int>(a.kind), a.stage, a.microbatch});
  const auto add = [&](std::vector<Action>& list, ActionKind kind, const Action& a) {
    if (present.insert({static_cast<int>(kind), a.stage, a.microbatch}).second)
      list.push_back({kind, a.stage, a.microbatch});
  };
  for (size_t rank = 0; rank < schedule.actions.size(); ++rank) {
    std::vector<Action>& list = out.actions[rank];
    list.clear();
    for (const Action& a : schedule.actions[rank]) {
      const bool from_previous = crosses_ranks(schedule, a.stage, a.stage - 1);
      const bool from_next = crosses_ranks(schedule, a.stage, a.stage + 1);
      const bool backward = a.kind == ActionKind::BackwardInput || a.kind == ActionKind::FullBackward;
      if (a.kind == ActionKind::Forward && from_previous) add(list, ActionKind::RecvActivation, a);
      if (backward && from_next) add(list, ActionKind::RecvGradient, a);
      list.push_back(a);
      if (a.kind == ActionKind::Forward && from_next) add(list, ActionKind::SendActivation, a);
      if (backward && from_previous) add(list, ActionKind::SendGradient, a);
    }
  }
  return out;
}

Schedule gpipe(int num_ranks, int num_microbatches) {
  check_sizes("gpipe", num_ranks, 1, num_microbatches);
  Schedule schedule = empty_schedule(num_ranks, 1, num_microbatches);
  for (int rank = 0; rank < num_ranks; ++rank) {
    for (int m = 0; m < num_microbatches; ++m) schedule.actions[rank].push_back({ActionKind::Forward, rank, m});
    for (int m = 0; m < num_microbatches; ++m) schedule.actions[rank].push_back({ActionKind::FullBackward, rank, m});
  }
  return with_communication(schedule);
}

Schedule one_f_one_b(int num_ranks, int num_microbatches) {
  check_sizes("one_f_one_b", num_ranks, 1, num_microbatches);
  Schedule schedule = empty_schedule(num_ranks, 1, num_microbatches);
  for (int rank = 0; rank < num_ranks; ++rank)
    schedule.actions[rank] = one_f_one_b_order(rank, num_ranks, num_microbatches, ActionKind::FullBackward);
  return with_communication(schedule);
}

Schedule interleaved_one_f_one_b(int num_ranks, int stages_per_rank, int num_microbatches) {
  check_sizes("interleaved_one_f_one_b", num_ranks, stages_per_rank, num_microbatches);
  if (stages_per_rank == 1) return one_f_one_b(num_ranks, num_microbatches);
  BRAID_CHECK(num_microbatches % num_ranks == 0, "interleaved_one_f_one_b: num_microbatches (", num_microbatches,
              ") must be a multiple of num_ranks (", num_ranks, ") with ", stages_per_rank, " stages per rank");
  const int p = num_ranks, v = stages_per_rank, total = num_microbatches * v;
  Schedule schedule = empty_schedule(p, v, num_microbatches);
  // The k-th forward (backward) of a rank: micro-batches go p at a time through its stages, front to back (back to
  // front), so each rank holds work for the next ranks while the first micro-batches travel down the pipeline.
  const auto microbatch = [&](int k) { return (k / (p * v)) * p + k % p; };
  const auto forward = [&](int rank, int k) {
    return Action{ActionKind::Forward, ((k / p) % v) * p + rank, microbatch(k)};
  };
  const auto backward = [&](int rank, int k) {
    return Action{ActionKind::FullBackward, (v - 1 - (k / p) % v) * p + rank, microbatch(k)};
  };
  for (int rank = 0; rank < p; ++rank) {
    std::vector<Action>& list = schedule.actions[rank];
    const int warmup = std::min((p - rank - 1) * 2 + (v - 1) * p, total);
    for (int k = 0; k < warmup; ++k) list.push_back(forward(rank, k));
    for (int i = 0; i < total - warmup; ++i) {
      list.push_back(forward(rank, warmup + i));
      list.push_back(backward(rank, i));
    }
    for (int k = total - warmup; k < total; ++k) list.push_back(backward(rank, k));
  }
  return receives_in_message_order(with_communication(schedule));
}

Schedule zero_bubble_h1(int num_ranks, int num_microbatches) {
  check_sizes("zero_bubble_h1", num_ranks, 1, num_microbatches);
  Schedule schedule = empty_schedule(num_ranks, 1, num_microbatches);
  for (int rank = 0; rank < num_ranks; ++rank) {
    std::vector<Action>& list = schedule.actions[rank];
    int weights_done = 0, backwards_done = 0;
    for (const Action& a : one_f_one_b_order(rank, num_ranks, num_microbatches, ActionKind::BackwardInput)) {
      list.push_back(a);
      if (a.kind != ActionKind::BackwardInput) continue;
      // Rank r's W trail its I by r steps: the later ranks send input gradients upstream first.
      if (++backwards_done > rank) list.push_back({ActionKind::BackwardWeight, rank, weights_done++});
    }
    while (weights_done < num_microbatches) list.push_back({ActionKind::BackwardWeight, rank, weights_done++});
  }
  return with_communication(schedule);
}

}  // namespace braid::dist
