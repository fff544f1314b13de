// A wait past BRAID_DIST_TIMEOUT ends the job; first it says why: the stuck operation (its seq no. and group), which
// members never issued it (asked over the job monitor) and what each is doing instead, who did not answer, and this
// rank's last operations (each asked rank prints its own).
#include <cstdio>
#include <string>

#include "flight_recorder.h"
#include "job_monitor.h"
#include "process_group_impl.h"

namespace braid::dist::detail {

namespace {

std::string member_line(const MemberAnswer& a, int64_t seq) {
  const std::string rank = "rank " + std::to_string(a.rank);
  if (!a.answered) return "  " + rank + " did not answer (gone, or stuck outside Braid with its monitor stopped)\n";
  const std::string issued = " (issued " + std::to_string(a.issued) + " collectives on the group)";
  if (seq > 0 && a.issued < seq) return "  " + rank + " did not arrive" + issued + ": it is " + a.doing + "\n";
  return "  " + rank + " arrived" + issued + ": it is " + a.doing + "\n";
}

std::string timeout_report() {
  const FlightRecorder& recorder = FlightRecorder::instance();
  std::vector<RecordedOp> ops = recorder.snapshot();
  const RecordedOp* stuck = recorder.oldest_unfinished(ops);
  const int me = runtime().rank;
  std::string out = "braid::dist: timeout report from rank " + std::to_string(me) + ":\n";
  if (stuck) {
    out += "  stuck in " + recorder.describe(*stuck) + "\n";
    std::vector<int> others;
    for (int r : recorder.group_ranks(stuck->group))
      if (r != me) others.push_back(r);
    for (const MemberAnswer& a : ask_members(stuck->group, stuck->seq, others))
      out += member_line(a, stuck->seq);
  }
  return out + "  rank " + std::to_string(me) + "'s last operations:\n" + recorder.lines(16, "    ");
}

}  // namespace

void abort_on_timeout(const std::string& what, int global_rank) {
  char seconds[32];
  std::snprintf(seconds, sizeof seconds, "%g", runtime().timeout_s);
  const std::string first = "braid::dist: " + what + " on rank " + std::to_string(global_rank) +
                            " did not complete within " + seconds +
                            " s; aborting the job (BRAID_DIST_TIMEOUT sets the limit)";
  if (!job_monitor_running()) braid::dist::abort(first);
  // Said before the report, which takes a second or two to gather.
  std::fprintf(stderr, "%s\n", first.c_str());
  std::fflush(stderr);
  std::string report = timeout_report();
  report.pop_back();  // abort() ends the line
  braid::dist::abort(report);
}

}  // namespace braid::dist::detail
