// A Chrome-trace timeline of every rank (the trace-event JSON that Perfetto and chrome://tracing open). While a
// trace is recorded, every ProcessGroup operation (send/recv, batch_isend_irecv, each collective: so DDP and tensor
// parallelism too) is an "X" event on a communication lane, from its issue to its completion, with its op, bytes,
// peer and tag; each wait that blocks is an event on the compute lane; the pipeline executor adds one event per
// F/I/W/B named like "F s1 mb3" with its stage and micro-batch. pid is the global rank; tid 0 is the compute lane
// and tids 1, 2, ... the communication lanes (one per operation in flight at once).
//
// start_trace(path) (or BRAID_TRACE=path at dist::init()) is called by every rank: it measures this rank's clock
// offset to rank 0 (a few ping-pongs over MPI, the one with the shortest round trip) and checks that every rank can
// write its file, throwing braid::Error on every rank, naming the file, if one cannot. stop_trace() (or finalize())
// writes the events to trace_path(path, rank): "trace.json" -> "trace.rank0.json" (a path without ".json" gets
// ".rank0.json" appended). The offset is in the file's "otherData" (clock_offset_us: add it to this rank's ts to get
// rank 0's clock); tools/braid_trace_merge merges the ranks' files into one on rank 0's clock.
//
// When no trace is recorded, instrumented code pays one relaxed atomic load per operation.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace braid::dist {

void start_trace(const std::string& path);
// Writes this rank's file and stops recording; does nothing when no trace is recorded. Not collective.
void stop_trace();
// trace_path("out/trace.json", 2) == "out/trace.rank2.json".
std::string trace_path(const std::string& path, int rank);

namespace detail {
inline std::atomic<bool> g_tracing{false};
}

inline bool is_tracing() { return detail::g_tracing.load(std::memory_order_relaxed); }

namespace trace {

using Clock = std::chrono::steady_clock;

enum class Lane { Compute, Communication };

// What an event's "args" carry; the fields left at their defaults are left out.
struct EventArgs {
  std::string op;        // "send", "all_reduce", "F", ...
  int stage = -1;
  int microbatch = -1;
  int64_t bytes = -1;
  int peer = -1;  // global rank
  int tag = -1;
};

// Records one complete event of this rank (dropped when no trace is recorded).
void record(std::string name, Lane lane, Clock::time_point start, Clock::time_point end, EventArgs args = {});

// While alive, the waits this thread blocks in carry this stage and micro-batch, and the label in their name
// ("wait recv for F s1 mb3"): the pipeline executor names the action a receive feeds.
class WaitContext {
 public:
  WaitContext(std::string label, int stage, int microbatch);
  ~WaitContext();
  WaitContext(const WaitContext&) = delete;
  WaitContext& operator=(const WaitContext&) = delete;

 private:
  const WaitContext* previous_;
  std::string label_;
  int stage_, microbatch_;
  friend void record_wait(const std::string& op, Clock::time_point start, Clock::time_point end, EventArgs args);
};

// Records a wait of `op` on the compute lane, named and tagged by the innermost WaitContext of this thread.
void record_wait(const std::string& op, Clock::time_point start, Clock::time_point end, EventArgs args);

}  // namespace trace
}  // namespace braid::dist
