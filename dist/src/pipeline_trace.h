// Private to dist/: how the pipeline executor puts its actions on the trace (braid/dist/trace.h). While an action
// runs, the waits it blocks in are named for it ("wait recv for F s1 mb3"); a compute action (F, I, W, B) becomes
// one compute-lane event named like "F s1 mb3", which begins once those waits are over, so that the boxes of a
// timeline show computation only.
#pragma once

#include <optional>
#include <string>

#include "braid/dist/pipeline_schedule.h"
#include "braid/dist/trace.h"

namespace braid::dist::detail {

// "F s1 mb3".
std::string action_event_name(const Action& action);

class TracedAction {
 public:
  explicit TracedAction(const Action& action);
  // `waited_s`: the seconds the action spent in waits, which the compute event leaves out.
  void finish(double waited_s);

 private:
  const Action& action_;
  trace::Clock::time_point start_;
  std::optional<trace::WaitContext> context_;
};

}  // namespace braid::dist::detail
