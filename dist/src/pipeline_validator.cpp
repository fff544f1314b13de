#include "braid/dist/pipeline_validator.h"

#include <algorithm>
#include <map>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

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

// The receive a compute action reads from, if it comes from another rank.
std::optional<Key> received_input(const Schedule& s, const Action& a) {
  if (a.kind == ActionKind::Forward && on_other_rank(s, a.stage, a.stage - 1))
    return key(ActionKind::RecvActivation, a.stage, a.microbatch);
  if ((a.kind == ActionKind::BackwardInput || a.kind == ActionKind::FullBackward) &&
      on_other_rank(s, a.stage, a.stage + 1))
    return key(ActionKind::RecvGradient, a.stage, a.microbatch);
  return std::nullopt;
}

Action action_of(const Key& k) { return {std::get<0>(k), std::get<1>(k), std::get<2>(k)}; }

// Runs the lists in order (sends and receives are posted without blocking; a compute waits until the send of what it
// receives has been issued) and reports the ranks left waiting.
void check_no_deadlock(const Schedule& s, const std::map<Key, Position>& found) {
  std::vector<size_t> next(s.num_ranks, 0);
  const auto issued = [&](const Position& p) { return next[p.rank] > p.index; };
  // The send that the compute `a` waits for, when it reads a receive.
  const auto awaited = [&](const Action& a) -> std::optional<Action> {
    const auto input = received_input(s, a);
    if (!input) return std::nullopt;
    return counterpart(action_of(*input));
  };
  for (bool progress = true; progress;) {
    progress = false;
    for (int rank = 0; rank < s.num_ranks; ++rank) {
      const auto& list = s.actions[rank];
      while (next[rank] < list.size()) {
        const auto send = awaited(list[next[rank]]);
        if (send && !issued(found.at(key(*send)))) break;
        ++next[rank];
        progress = true;
      }
    }
  }
  std::string stuck;
  for (int rank = 0; rank < s.num_ranks; ++rank) {
    if (next[rank] == s.actions[rank].size()) continue;
    const Action& a = s.actions[rank][next[rank]];
    const Action send = *awaited(a);
    const Position at = found.at(key(send));
    stuck += "; " + where(rank, next[rank], a) + " waits for " + to_string(send) + " (rank " + std::to_string(at.rank) +
             ", action " + std::to_string(at.index) + ")";
  }
  BRAID_CHECK(stuck.empty(), "validate: deadlock", stuck);
}

// ---- in-order transport (no tags) ----

// The rank a send goes to or a receive comes from.
int peer_of(const Schedule& s, const Action& a) { return s.rank_of_stage(counterpart(a).stage); }

// Between each ordered pair of ranks, the k-th send must meet the k-th receive: nothing else tells messages apart.
void check_pair_order(const Schedule& s) {
  // [sender][receiver]: the sends in the sender's order, and the receives in the receiver's order (with positions).
  std::map<std::pair<int, int>, std::vector<std::pair<Action, size_t>>> sends, receives;
  for (int rank = 0; rank < s.num_ranks; ++rank) {
    for (size_t i = 0; i < s.actions[rank].size(); ++i) {
      const Action& a = s.actions[rank][i];
      if (is_compute(a.kind)) continue;
      if (is_receive(a.kind))
        receives[{peer_of(s, a), rank}].push_back({a, i});
      else
        sends[{rank, peer_of(s, a)}].push_back({a, i});
    }
  }
  for (const auto& [pair, out] : sends) {
    const auto& in = receives[pair];
    for (size_t k = 0; k < out.size() && k < in.size(); ++k) {
      const Action& want = counterpart(out[k].first);
      if (in[k].first == want) continue;
      BRAID_FAIL("validate: in-order transport: ", where(pair.second, in[k].second, in[k].first), " is rank ",
                 pair.second, "'s receive number ", k, " from rank ", pair.first, ", but rank ", pair.first,
                 "'s send number ", k, " to it is ", where(pair.first, out[k].second, out[k].first),
                 " (without tags the k-th send meets the k-th receive)");
    }
  }
}

// Each maximal run of consecutive sends and receives on a rank is one batch: a batch starts once the rank's earlier
// batches have completed (one stream), and completes once every partner operation's batch has started.
struct Batches {
  std::vector<std::vector<std::pair<size_t, size_t>>> ranges;  // [rank][batch]: [begin, end) of its actions
  std::vector<std::vector<int>> batch_of;                      // [rank][action]: its batch, -1 for compute
};

Batches split_batches(const Schedule& s) {
  Batches b;
  b.ranges.resize(size_t(s.num_ranks));
  b.batch_of.resize(size_t(s.num_ranks));
  for (int rank = 0; rank < s.num_ranks; ++rank) {
    const auto& list = s.actions[rank];
    b.batch_of[rank].assign(list.size(), -1);
    for (size_t i = 0; i < list.size(); ++i) {
      if (is_compute(list[i].kind)) continue;
      if (i == 0 || is_compute(list[i - 1].kind)) b.ranges[rank].push_back({i, i});
      b.ranges[rank].back().second = i + 1;
      b.batch_of[rank][i] = int(b.ranges[rank].size()) - 1;
    }
  }
  return b;
}

struct InOrderRun {
  const Schedule& s;
  const std::map<Key, Position>& found;
  Batches b;
  std::vector<size_t> next;    // [rank]: the next action its thread runs
  std::vector<int> posted;     // [rank]: batches posted
  std::vector<int> completed;  // [rank]: batches completed (a prefix)

  bool started(int rank, int batch) const { return posted[rank] > batch && completed[rank] >= batch; }

  // The first operation of `rank`'s batch whose partner operation has not started (its index and the partner's
  // position), or none.
  std::optional<std::pair<size_t, Position>> blocking_partner(int rank, int batch) const {
    const auto [begin, end] = b.ranges[rank][size_t(batch)];
    for (size_t i = begin; i < end; ++i) {
      const Position p = found.at(key(counterpart(s.actions[rank][i])));
      if (!started(p.rank, b.batch_of[p.rank][p.index])) return std::pair{i, p};
    }
    return std::nullopt;
  }

  // Runs the rank's thread as far as it goes: posting never blocks, a compute waits for the batch it reads from.
  bool advance(int rank) {
    const auto& list = s.actions[rank];
    bool moved = false;
    while (next[rank] < list.size()) {
      const Action& a = list[next[rank]];
      if (!is_compute(a.kind)) {
        const int batch = b.batch_of[rank][next[rank]];
        posted[rank] = batch + 1;
        next[rank] = b.ranges[rank][size_t(batch)].second;
      } else {
        const auto input = received_input(s, a);
        if (input && completed[rank] <= b.batch_of[rank][found.at(*input).index]) break;
        ++next[rank];
      }
      moved = true;
    }
    return moved;
  }

  bool complete(int rank) {
    bool moved = false;
    while (completed[rank] < posted[rank] && !blocking_partner(rank, completed[rank])) {
      ++completed[rank];
      moved = true;
    }
    return moved;
  }

  std::string stuck(int rank) const {
    const auto& list = s.actions[rank];
    if (completed[rank] < posted[rank]) {
      const auto [at, p] = *blocking_partner(rank, completed[rank]);
      return "; " + where(rank, at, list[at]) + " cannot complete: its partner " +
             where(p.rank, p.index, s.actions[p.rank][p.index]) + " is not posted or waits behind an earlier " +
             "send/receive of rank " + std::to_string(p.rank);
    }
    if (next[rank] < list.size()) {
      const Position p = found.at(*received_input(s, list[next[rank]]));
      return "; " + where(rank, next[rank], list[next[rank]]) + " waits for " +
             where(p.rank, p.index, s.actions[p.rank][p.index]) + " to complete";
    }
    return {};
  }
};

void check_no_deadlock_in_order(const Schedule& s, const std::map<Key, Position>& found) {
  InOrderRun run{s,
                 found,
                 split_batches(s),
                 std::vector<size_t>(size_t(s.num_ranks), 0),
                 std::vector<int>(size_t(s.num_ranks), 0),
                 std::vector<int>(size_t(s.num_ranks), 0)};
  for (bool progress = true; progress;) {
    progress = false;
    for (int rank = 0; rank < s.num_ranks; ++rank) progress |= run.advance(rank);
    for (int rank = 0; rank < s.num_ranks; ++rank) progress |= run.complete(rank);
  }
  std::string stuck;
  for (int rank = 0; rank < s.num_ranks; ++rank) stuck += run.stuck(rank);
  BRAID_CHECK(stuck.empty(), "validate: deadlock with in-order transport (each run of sends and receives one batch)",
              stuck);
}

}  // namespace

ValidationReport validate(const Schedule& schedule, std::optional<int> max_in_flight, P2POrdering ordering) {
  check_sizes(schedule);
  const std::map<Key, Position> found = locate(schedule);
  ValidationReport report;
  for (int rank = 0; rank < schedule.num_ranks; ++rank)
    report.peak_in_flight.push_back(check_rank_order(schedule, rank, max_in_flight));
  check_complete(schedule, found);
  check_matched(schedule, found);
  check_no_deadlock(schedule, found);
  switch (ordering) {
    case P2POrdering::Tagged:
      break;
    case P2POrdering::InOrder:
      check_pair_order(schedule);
      check_no_deadlock_in_order(schedule, found);
      break;
  }
  return report;
}

}  // namespace braid::dist
