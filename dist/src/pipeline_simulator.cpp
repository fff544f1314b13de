#include "braid/dist/pipeline_simulator.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

#include "braid/core/error.h"
#include "braid/dist/pipeline_validator.h"

namespace braid::dist {
namespace {

using Key = std::tuple<ActionKind, int, int>;  // (kind, stage, microbatch)

// The send whose arrival a receive waits for.
Key sender(const Action& receive) {
  if (receive.kind == ActionKind::RecvActivation)
    return {ActionKind::SendActivation, receive.stage - 1, receive.microbatch};
  return {ActionKind::SendGradient, receive.stage + 1, receive.microbatch};
}

bool is_receive(ActionKind kind) { return kind == ActionKind::RecvActivation || kind == ActionKind::RecvGradient; }
bool is_send(ActionKind kind) { return kind == ActionKind::SendActivation || kind == ActionKind::SendGradient; }

// The receive a compute action would read from (posted on its rank, if the stage before or after is elsewhere).
Action receive_read_by(const Action& a) {
  const bool forward = a.kind == ActionKind::Forward;
  return {forward ? ActionKind::RecvActivation : ActionKind::RecvGradient, a.stage, a.microbatch};
}

}  // namespace

double cost_of(const Action& action, const StageCosts& costs) {
  switch (action.kind) {
    case ActionKind::Forward:
      return costs.forward;
    case ActionKind::BackwardInput:
      return costs.backward_input;
    case ActionKind::BackwardWeight:
      return costs.backward_weight;
    case ActionKind::FullBackward:
      return costs.backward_input + costs.backward_weight;
    case ActionKind::SendActivation:
    case ActionKind::RecvActivation:
    case ActionKind::SendGradient:
    case ActionKind::RecvGradient:
      return 0.0;
  }
  return 0.0;
}

SimulationResult simulate(const Schedule& schedule, const StageCosts& costs) {
  BRAID_CHECK(costs.forward >= 0 && costs.backward_input >= 0 && costs.backward_weight >= 0 && costs.communication >= 0,
              "simulate: costs must be non-negative, got forward ", costs.forward, ", backward_input ",
              costs.backward_input, ", backward_weight ", costs.backward_weight, ", communication ",
              costs.communication);
  validate(schedule);
  const int p = schedule.num_ranks;
  SimulationResult result;
  result.compute_time.assign(p, 0.0);
  result.start.resize(p);
  result.finish.resize(p);
  std::vector<size_t> next(p, 0);
  std::vector<double> clock(p, 0.0);
  std::map<Key, double> arrival;  // of each send issued so far
  std::set<Key> posted;           // the receives posted so far
  for (bool progress = true; progress;) {
    progress = false;
    for (int rank = 0; rank < p; ++rank) {
      const auto& list = schedule.actions[rank];
      for (; next[rank] < list.size(); ++next[rank], progress = true) {
        const Action& a = list[next[rank]];
        double begin = clock[rank];
        const Action read = receive_read_by(a);
        if (is_compute(a.kind) && a.kind != ActionKind::BackwardWeight &&
            posted.count({read.kind, read.stage, read.microbatch})) {
          auto it = arrival.find(sender(read));
          if (it == arrival.end()) break;
          begin = std::max(begin, it->second);
        }
        if (is_receive(a.kind)) posted.insert({a.kind, a.stage, a.microbatch});
        clock[rank] = begin + cost_of(a, costs);
        result.compute_time[rank] += cost_of(a, costs);
        if (is_send(a.kind)) arrival[{a.kind, a.stage, a.microbatch}] = clock[rank] + costs.communication;
        result.start[rank].push_back(begin);
        result.finish[rank].push_back(clock[rank]);
      }
    }
  }
  result.step_time = *std::max_element(clock.begin(), clock.end());
  double compute = 0.0;
  for (double c : result.compute_time) compute += c;
  result.idle_time = result.step_time - compute / p;
  result.bubble_fraction = result.step_time > 0 ? 1.0 - compute / (p * result.step_time) : 0.0;
  return result;
}

}  // namespace braid::dist
