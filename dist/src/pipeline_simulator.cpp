#include "braid/dist/pipeline_simulator.h"

#include <algorithm>
#include <limits>
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

namespace {

// One run of the simulation, event by event: the time moves to the next compute to end at the current rate or the
// next message to arrive, and at each event every rank runs as far as it can.
class Simulation {
 public:
  Simulation(const Schedule& schedule, const StageCosts& costs, int cores)
      : schedule_(schedule),
        costs_(costs),
        cores_(cores),
        p_(schedule.num_ranks),
        next_(p_, 0),
        running_(p_, false),
        end_(p_, 0.0) {
    result_.compute_time.assign(p_, 0.0);
    result_.start.resize(p_);
    result_.finish.resize(p_);
  }

  SimulationResult run() {
    for (advance_all(); !done(); advance_all()) {
      const double next = next_event();
      BRAID_CHECK(next < std::numeric_limits<double>::infinity(), "simulate: no rank can move at time ", now_,
                  " although the schedule validated");
      now_ = next;
      arrivals_.erase(arrivals_.begin(), arrivals_.upper_bound(now_));
      finish_computes();
      set_rate();
    }
    for (const auto& finish : result_.finish)
      if (!finish.empty()) result_.step_time = std::max(result_.step_time, finish.back());
    return std::move(result_);
  }

 private:
  // Processor sharing: n computing ranks on c cores each progress at min(1, c / n).
  double rate_for(int running) const { return cores_ == 0 || running <= cores_ ? 1.0 : double(cores_) / running; }
  int num_running() const { return int(std::count(running_.begin(), running_.end(), true)); }
  bool done() const {
    for (int rank = 0; rank < p_; ++rank)
      if (next_[rank] < schedule_.actions[rank].size()) return false;
    return true;
  }

  void advance_all() {
    for (bool progress = true; progress;) {
      progress = false;
      for (int rank = 0; rank < p_; ++rank)
        while (advance(rank)) progress = true;
    }
  }

  // Runs or starts the rank's next action at now_; false when it is computing, waiting for a tensor, or done.
  bool advance(int rank) {
    const auto& list = schedule_.actions[rank];
    if (running_[rank] || next_[rank] == list.size()) return false;
    const Action& a = list[next_[rank]];
    const Action read = receive_read_by(a);
    if (is_compute(a.kind) && a.kind != ActionKind::BackwardWeight &&
        posted_.count({read.kind, read.stage, read.microbatch})) {
      auto it = arrival_.find(sender(read));
      if (it == arrival_.end() || it->second > now_) return false;
    }
    const double cost = cost_of(a, costs_);
    result_.compute_time[rank] += cost;
    result_.start[rank].push_back(now_);
    if (cost > 0) {
      start_compute(rank, cost);
      return true;
    }
    if (is_receive(a.kind)) posted_.insert({a.kind, a.stage, a.microbatch});
    if (is_send(a.kind)) {
      arrival_[{a.kind, a.stage, a.microbatch}] = now_ + costs_.communication;
      arrivals_.insert(now_ + costs_.communication);
    }
    result_.finish[rank].push_back(now_);
    ++next_[rank];
    return true;
  }

  void start_compute(int rank, double cost) {
    running_[rank] = true;
    set_rate();
    end_[rank] = now_ + cost / rate_;
  }

  void finish_computes() {
    for (int rank = 0; rank < p_; ++rank) {
      if (!running_[rank] || end_[rank] > now_) continue;
      running_[rank] = false;
      result_.finish[rank].push_back(now_);
      ++next_[rank];
    }
  }

  // Rescales the end of every running compute when the share of a core changes (start_compute then sets its own).
  void set_rate() {
    const double rate = rate_for(num_running());
    if (rate == rate_) return;
    for (int rank = 0; rank < p_; ++rank)
      if (running_[rank]) end_[rank] = now_ + (end_[rank] - now_) * rate_ / rate;
    rate_ = rate;
  }

  double next_event() const {
    double next = arrivals_.empty() ? std::numeric_limits<double>::infinity() : *arrivals_.begin();
    for (int rank = 0; rank < p_; ++rank)
      if (running_[rank]) next = std::min(next, end_[rank]);
    return next;
  }

  const Schedule& schedule_;
  const StageCosts& costs_;
  const int cores_, p_;
  std::vector<size_t> next_;
  std::vector<bool> running_;
  std::vector<double> end_;  // when each running compute ends at the current rate
  double now_ = 0.0, rate_ = 1.0;
  std::map<Key, double> arrival_;   // of each send issued so far
  std::multiset<double> arrivals_;  // the arrival times still ahead
  std::set<Key> posted_;            // the receives posted so far
  SimulationResult result_;
};

}  // namespace

SimulationResult simulate(const Schedule& schedule, const StageCosts& costs, const SimulationOptions& options) {
  BRAID_CHECK(costs.forward >= 0 && costs.backward_input >= 0 && costs.backward_weight >= 0 && costs.communication >= 0,
              "simulate: costs must be non-negative, got forward ", costs.forward, ", backward_input ",
              costs.backward_input, ", backward_weight ", costs.backward_weight, ", communication ",
              costs.communication);
  BRAID_CHECK(options.cores >= 0, "simulate: SimulationOptions::cores must be >= 0 (0: one per rank), got ",
              options.cores);
  validate(schedule);
  SimulationResult result = Simulation(schedule, costs, options.cores).run();
  const int p = schedule.num_ranks;
  double compute = 0.0;
  for (double c : result.compute_time) compute += c;
  result.idle_time = result.step_time - compute / p;
  result.bubble_fraction = result.step_time > 0 ? 1.0 - compute / (p * result.step_time) : 0.0;
  return result;
}

}  // namespace braid::dist
