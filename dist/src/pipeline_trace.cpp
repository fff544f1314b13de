#include "pipeline_trace.h"

#include <chrono>

namespace braid::dist::detail {

std::string action_event_name(const Action& action) {
  return to_string(action.kind) + " s" + std::to_string(action.stage) + " mb" + std::to_string(action.microbatch);
}

TracedAction::TracedAction(const Action& action) : action_(action) {
  if (!is_tracing()) return;
  start_ = trace::Clock::now();
  context_.emplace(action_event_name(action), action.stage, action.microbatch);
}

void TracedAction::finish(double waited_s) {
  if (!context_ || !is_compute(action_.kind)) return;
  trace::EventArgs args;
  args.op = to_string(action_.kind);
  args.stage = action_.stage;
  args.microbatch = action_.microbatch;
  const auto waited = std::chrono::duration_cast<trace::Clock::duration>(std::chrono::duration<double>(waited_s));
  trace::record(action_event_name(action_), trace::Lane::Compute, start_ + waited, trace::Clock::now(),
                std::move(args));
}

}  // namespace braid::dist::detail
