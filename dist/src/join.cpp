#include "braid/dist/join.h"

#include <algorithm>
#include <exception>
#include <utility>

#include "braid/core/creation.h"
#include "braid/core/ops.h"
#include "group_ranks.h"

namespace braid::dist {

using detail::ranks_str;

Join::Join(std::vector<Joinable*> joinables, JoinOptions options)
    : joinables_(std::move(joinables)), options_(options), uncaught_at_start_(std::uncaught_exceptions()) {
  BRAID_CHECK(!joinables_.empty(), "Join: expected at least one joinable (e.g. Join({&ddp}))");
  for (size_t k = 0; k < joinables_.size(); ++k) {
    Joinable* j = joinables_[k];
    BRAID_CHECK(j, "Join: joinable ", k, " is null");
    BRAID_CHECK(std::count(joinables_.begin(), joinables_.end(), j) == 1, "Join: joinable ", k, " is listed twice");
    BRAID_CHECK(!j->join_context_, "Join: joinable ", k, " is already in another Join");
    auto g = j->join_process_group();
    BRAID_CHECK(g, "Join: joinable ", k, " has no process group");
    if (k == 0) {
      group_ = g;
      device_ = j->join_device();
    }
    BRAID_CHECK(g->ranks() == group_->ranks(), "Join: joinable ", k, " uses the group ", ranks_str(g->ranks()),
                ", joinable 0 the group ", ranks_str(group_->ranks()), "; every joinable must share one group");
  }
  for (Joinable* j : joinables_) hooks_.push_back(j->join_hook(options_));
  for (Joinable* j : joinables_) j->join_context_ = this;
}

Join::~Join() noexcept(false) {
  const bool run = !finished_ && options_.enable && std::uncaught_exceptions() == uncaught_at_start_;
  if (!run) {
    detach();
    return;
  }
  try {
    finish();
  } catch (...) {
    detach();
    throw;
  }
}

void Join::detach() {
  for (Joinable* j : joinables_)
    if (j->join_context_ == this) j->join_context_ = nullptr;
}

JoinRound Join::gather(bool active) {
  const int p = group_->size();
  Tensor all = empty({p}, TensorOptions(DType::Int64, device_));
  Tensor mine = ops::to_device(from_vector(std::vector<int64_t>{active ? 1 : 0}), device_);
  group_->all_gather(all, mine)->wait();
  const std::vector<int64_t> flags = ops::to_device(all, Device::cpu()).to_vector<int64_t>();
  JoinRound round;
  for (int r = 0; r < p; ++r)
    if (flags[size_t(r)]) round.active.push_back(r);
  return round;
}

void Join::finish() {
  BRAID_CHECK(!finished_, "Join::finish: already called on this Join");
  finished_ = true;
  if (!options_.enable) {
    detach();
    return;
  }
  bool is_last_joiner = true;
  for (;;) {
    round_ = gather(false);
    if (round_.active.empty()) break;
    BRAID_CHECK(!options_.throw_on_early_termination, "Join: rank ", group_->rank(), " of the group ",
                ranks_str(group_->ranks()), " ran out of inputs while the ranks ", ranks_str(round_.active),
                " still iterate (throw_on_early_termination)");
    is_last_joiner = false;
    for (auto& h : hooks_) h->main_hook(round_);
  }
  detach();
  for (auto& h : hooks_) h->post_hook(is_last_joiner);
}

const JoinRound* Join::notify_join_context(Joinable& joinable) {
  Join* join = joinable.join_context_;
  if (!join || !join->options_.enable) return nullptr;
  if (&joinable != join->joinables_.front()) return &join->round_;
  join->round_ = join->gather(true);
  const JoinRound& round = join->round_;
  const int p = join->group_->size();
  if (join->options_.throw_on_early_termination && int(round.active.size()) < p) {
    std::vector<int> joined;
    for (int r = 0; r < p; ++r)
      if (!std::binary_search(round.active.begin(), round.active.end(), r)) joined.push_back(r);
    BRAID_FAIL("Join: the ranks ", ranks_str(joined), " of the group ", ranks_str(join->group_->ranks()),
               " ran out of inputs while rank ", join->group_->rank(),
               " still iterates (throw_on_early_termination)");
  }
  return &round;
}

}  // namespace braid::dist
