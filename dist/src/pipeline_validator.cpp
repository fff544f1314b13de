#include "braid/dist/pipeline_validator.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <tuple>

#include "braid/core/error.h"

namespace braid::dist {
namespace {

using Key = std::tuple<ActionKind, int, int>;  // (kind, stage, microbatch)

struct Position {
  int rank;
  size_t index;
};

Key key(ActionKind kind, int stage, int microbatch) { return {kind, stage, microbatch}; }
Key key(const Action& a) { return {a.kind, a.stage, a.microbatch}; }

std::string where(int rank, size_t index, const Action& a) {
  return "rank " + std::to_string(rank) + ", action " + std::to_string(index) + " (" + to_string(a) + ")";
}

std::string name(ActionKind kind, int stage, int microbatch) { return to_string(Action{kind, stage, microbatch}); }

bool on_other_rank(const Schedule& s, int stage, int neighbour) {
  return neighbour >= 0 && neighbour < s.num_stages() && s.rank_of_stage(stage) != s.rank_of_stage(neighbour);
}

// The send or receive that meets `a` on the neighbouring stage's rank.
Action counterpart(const Action& a) {
  switch (a.kind) {
    case ActionKind::SendActivation:
      return {ActionKind::RecvActivation, a.stage + 1, a.microbatch};
    case ActionKind::RecvActivation:
      return {ActionKind::SendActivation, a.stage - 1, a.microbatch};
    case ActionKind::SendGradient:
      return {ActionKind::RecvGradient, a.stage - 1, a.microbatch};
    case ActionKind::RecvGradient:
      return {ActionKind::SendGradient, a.stage + 1, a.microbatch};
    case ActionKind::Forward:
    case ActionKind::BackwardInput:
    case ActionKind::BackwardWeight:
    case ActionKind::FullBackward:
      break;
  }
  BRAID_FAIL("validate: ", to_string(a), " is not a send or receive");
}

bool is_receive(ActionKind kind) { return kind == ActionKind::RecvActivation || kind == ActionKind::RecvGradient; }

void check_sizes(const Schedule& s) {
  BRAID_CHECK(s.num_ranks >= 1 && s.stages_per_rank >= 1 && s.num_microbatches >= 1,
              "validate: num_ranks, stages_per_rank and num_microbatches must be at least 1, got ", s.num_ranks, ", ",
              s.stages_per_rank, ", ", s.num_microbatches);
  BRAID_CHECK(s.actions.size() == static_cast<size_t>(s.num_ranks), "validate: the schedule has ", s.actions.size(),
              " action lists for ", s.num_ranks, " ranks");
}

void check_placement(const Schedule& s, int rank, size_t index, const Action& a) {
  BRAID_CHECK(a.stage >= 0 && a.stage < s.num_stages(), "validate: ", where(rank, index, a),
              ": stage out of range [0, ", s.num_stages(), ")");
  BRAID_CHECK(s.rank_of_stage(a.stage) == rank, "validate: ", where(rank, index, a), ": stage ", a.stage,
              " lives on rank ", s.rank_of_stage(a.stage));
  BRAID_CHECK(a.microbatch >= 0 && a.microbatch < s.num_microbatches, "validate: ", where(rank, index, a),
              ": micro-batch out of range [0, ", s.num_microbatches, ")");
  if (is_compute(a.kind)) return;
  const int neighbour = counterpart(a).stage;
  BRAID_CHECK(on_other_rank(s, a.stage, neighbour), "validate: ", where(rank, index, a), ": stage ", neighbour,
              " is not a stage on another rank");
}

// Map of every action to where it is; throws on the second occurrence of one.
std::map<Key, Position> locate(const Schedule& s) {
  std::map<Key, Position> found;
  for (int rank = 0; rank < s.num_ranks; ++rank) {
    for (size_t i = 0; i < s.actions[rank].size(); ++i) {
      const Action& a = s.actions[rank][i];
      check_placement(s, rank, i, a);
      auto [it, inserted] = found.insert({key(a), Position{rank, i}});
      BRAID_CHECK(inserted, "validate: ", where(rank, i, a), ": duplicate of action ", it->second.index);
    }
  }
  return found;
}

// Why `a` cannot run here (what must already have run on this rank before it), or empty when it can; `done` holds this
// rank's past actions.
std::string missing_prerequisite(const Schedule& s, const Action& a, const std::set<Key>& done) {
  const int st = a.stage, m = a.microbatch;
  const auto has = [&](ActionKind kind, int stage) { return done.count(key(kind, stage, m)) > 0; };
  const auto backward_done = [&](int stage) {
    return has(ActionKind::BackwardInput, stage) || has(ActionKind::FullBackward, stage);
  };
  switch (a.kind) {
    case ActionKind::Forward:
      if (on_other_rank(s, st, st - 1) && !has(ActionKind::RecvActivation, st))
        return "comes before the receive of its input " + name(ActionKind::RecvActivation, st, m);
      if (st > 0 && !on_other_rank(s, st, st - 1) && !has(ActionKind::Forward, st - 1))
        return "comes before the forward of the stage before " + name(ActionKind::Forward, st - 1, m);
      return {};
    case ActionKind::BackwardInput:
    case ActionKind::FullBackward:
      if (!has(ActionKind::Forward, st)) return "comes before its forward " + name(ActionKind::Forward, st, m);
      if (backward_done(st)) return "is a second backward of the stage for this micro-batch";
      if (on_other_rank(s, st, st + 1) && !has(ActionKind::RecvGradient, st))
        return "comes before the receive of its output's gradient " + name(ActionKind::RecvGradient, st, m);
      if (st + 1 < s.num_stages() && !on_other_rank(s, st, st + 1) && !backward_done(st + 1))
        return "comes before the backward of the stage after " + name(ActionKind::BackwardInput, st + 1, m);
      return {};
    case ActionKind::BackwardWeight:
      if (!has(ActionKind::BackwardInput, st))
        return "comes before its backward for the input " + name(ActionKind::BackwardInput, st, m);
      return {};
    case ActionKind::SendActivation:
      if (!has(ActionKind::Forward, st))
        return "comes before the forward that produces it " + name(ActionKind::Forward, st, m);
      return {};
    case ActionKind::SendGradient:
      if (!backward_done(st))
        return "comes before the backward that produces it " + name(ActionKind::BackwardInput, st, m);
      return {};
    case ActionKind::RecvActivation:
    case ActionKind::RecvGradient:
      return {};
  }
  return {};
}

// Walks one rank's list in order: dependencies, and the activations held (returns the peak).
int check_rank_order(const Schedule& s, int rank, std::optional<int> max_in_flight) {
  std::set<Key> done;
  int held = 0, peak = 0;
  std::optional<size_t> first_over;
  for (size_t i = 0; i < s.actions[rank].size(); ++i) {
    const Action& a = s.actions[rank][i];
    const std::string missing = missing_prerequisite(s, a, done);
    BRAID_CHECK(missing.empty(), "validate: ", where(rank, i, a), " ", missing);
    done.insert(key(a));
    if (a.kind == ActionKind::Forward) ++held;
    if (a.kind == ActionKind::BackwardInput || a.kind == ActionKind::FullBackward) --held;
    peak = std::max(peak, held);
    if (max_in_flight && held > *max_in_flight && !first_over) first_over = i;
  }
  if (first_over)
    BRAID_FAIL("validate: ", where(rank, *first_over, s.actions[rank][*first_over]), " holds ", *max_in_flight + 1,
               " activations, over the bound of ", *max_in_flight, " (the rank's peak is ", peak, ")");
  return peak;
}

void check_complete(const Schedule& s, const std::map<Key, Position>& found) {
  for (int stage = 0; stage < s.num_stages(); ++stage) {
    for (int m = 0; m < s.num_microbatches; ++m) {
      const auto missing = [&](ActionKind kind) {
        return "validate: rank " + std::to_string(s.rank_of_stage(stage)) + " has no " + name(kind, stage, m);
      };
      const auto has = [&](ActionKind kind) { return found.count(key(kind, stage, m)) > 0; };
      BRAID_CHECK(has(ActionKind::Forward), missing(ActionKind::Forward));
      if (has(ActionKind::FullBackward)) continue;
      BRAID_CHECK(has(ActionKind::BackwardInput), missing(ActionKind::FullBackward), " nor ",
                  name(ActionKind::BackwardInput, stage, m));
      BRAID_CHECK(has(ActionKind::BackwardWeight), missing(ActionKind::BackwardWeight));
    }
  }
}

void check_matched(const Schedule& s, const std::map<Key, Position>& found) {
  for (const auto& [k, pos] : found) {
    const Action& a = s.actions[pos.rank][pos.index];
    if (is_compute(a.kind)) continue;
    const Action other = counterpart(a);
    BRAID_CHECK(found.count(key(other)), "validate: ", where(pos.rank, pos.index, a), ": no matching ",
                to_string(other), " on rank ", s.rank_of_stage(other.stage));
  }
}

// Runs the lists in order (sends never block, a receive waits for its send) and reports the ranks left waiting.
void check_no_deadlock(const Schedule& s, const std::map<Key, Position>& found) {
  std::vector<size_t> next(s.num_ranks, 0);
  const auto issued = [&](const Position& p) { return next[p.rank] > p.index; };
  for (bool progress = true; progress;) {
    progress = false;
    for (int rank = 0; rank < s.num_ranks; ++rank) {
      const auto& list = s.actions[rank];
      while (next[rank] < list.size()) {
        const Action& a = list[next[rank]];
        if (is_receive(a.kind) && !issued(found.at(key(counterpart(a))))) break;
        ++next[rank];
        progress = true;
      }
    }
  }
  std::string stuck;
  for (int rank = 0; rank < s.num_ranks; ++rank) {
    if (next[rank] == s.actions[rank].size()) continue;
    const Action& a = s.actions[rank][next[rank]];
    const Position send = found.at(key(counterpart(a)));
    stuck += "; " + where(rank, next[rank], a) + " waits for " + to_string(counterpart(a)) + " (rank " +
             std::to_string(send.rank) + ", action " + std::to_string(send.index) + ")";
  }
  BRAID_CHECK(stuck.empty(), "validate: deadlock", stuck);
}

}  // namespace

ValidationReport validate(const Schedule& schedule, std::optional<int> max_in_flight) {
  check_sizes(schedule);
  const std::map<Key, Position> found = locate(schedule);
  ValidationReport report;
  for (int rank = 0; rank < schedule.num_ranks; ++rank)
    report.peak_in_flight.push_back(check_rank_order(schedule, rank, max_in_flight));
  check_complete(schedule, found);
  check_matched(schedule, found);
  check_no_deadlock(schedule, found);
  return report;
}

}  // namespace braid::dist
