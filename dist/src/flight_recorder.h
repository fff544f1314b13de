// The flight recorder: this rank's last operations on any MPI group (group, seq no., what, state, times), kept in a
// fixed ring so that a job that hangs or loses a rank can say what each rank was doing. Recording copies a few
// hundred bytes under an uncontended mutex, with no allocation and no string: descriptions are made only when the
// recorder is printed.
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "process_group_impl.h"

namespace braid::dist::detail {

enum class OpState : int32_t { Issued, Started, Completed, Failed };

const char* op_state_name(OpState state);

struct RecordedOp {
  uint64_t id = 0;          // 1-based order of issue on this rank; 0: an empty slot
  const void* key = nullptr;  // the operation's Work, to find the record again (unique while not finished)
  int64_t group = 0;        // MpiBackend::group_id()
  int64_t seq = 0;          // the collective's seq no. on its group (0: send/recv/batch)
  Signature sig;
  std::array<char, 72> label{};  // an internal operation's or batch's label (truncated); empty: describe(sig)
  OpState state = OpState::Issued;
  int64_t issued_ns = 0, started_ns = 0, ended_ns = 0;  // now_ns()
  bool finished() const { return state == OpState::Completed || state == OpState::Failed; }
};

class FlightRecorder {
 public:
  static constexpr size_t kCapacity = 64;
  static FlightRecorder& instance();  // never destroyed: reports run from atexit and abort paths

  // An operation issued on `group` (whose world ranks are `ranks`: copied the first time the group appears).
  void issued(const void* key, int64_t group, const std::vector<int>& ranks, const Signature& sig,
              const std::string& label);
  // The latest unfinished record of `key` moves to `state`.
  void mark(const void* key, OpState state);

  std::vector<RecordedOp> snapshot() const;  // oldest first
  // (group id, collectives issued on it) for every group this rank issued one on.
  std::vector<std::pair<int64_t, int64_t>> issued_counts() const;
  int64_t issued_on(int64_t group) const;
  std::vector<int> group_ranks(int64_t group) const;  // empty if never seen
  // The operation a stuck rank is stuck in: the oldest started and unfinished one, else the oldest issued one.
  const RecordedOp* oldest_unfinished(const std::vector<RecordedOp>& ops) const;

  // "all_reduce(sum, [4] float32) #3 on group 0 [0,1]"
  std::string describe(const RecordedOp& op) const;
  // One line per operation, "<indent><describe>: <state> <how long ago>", the last `count` ones.
  std::string lines(size_t count, const std::string& indent = "  ") const;

 private:
  FlightRecorder() = default;
  RecordedOp* find(const void* key);

  mutable std::mutex mutex_;
  std::array<RecordedOp, kCapacity> ring_{};
  uint64_t next_id_ = 1;
  std::vector<int64_t> issued_;            // by group id: the highest collective seq no. issued
  std::vector<std::vector<int>> ranks_;    // by group id
};

int64_t now_ns();  // CLOCK_MONOTONIC_COARSE

}  // namespace braid::dist::detail
