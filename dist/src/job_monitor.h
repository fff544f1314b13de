// The job monitor: under mpirun, a light thread per rank that watches a private duplicate of MPI_COMM_WORLD (polled
// with MPI_Iprobe every few tens of milliseconds, asleep in between) for
//   - goodbyes: a rank that leaves (finalize(), explicit or at exit) tells every other rank how many collectives it
//     issued on each group. A rank that waits, or later waits, for it in a collective it never issued (or, a short
//     grace after the leaver's own transfers all completed, in a send/recv with it) ends the job naming both,
//     instead of hanging until the timeout;
//   - questions from a rank whose wait timed out: what this rank issued on the group and what it is doing now (it
//     also prints its own flight recorder).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace braid::dist::detail {

// init(), once MPI runs with more than one rank: duplicates MPI_COMM_WORLD (collective) and starts the thread.
void start_job_monitor();
// finalize(), explicit or at exit, before the backends shut down: the goodbye to every other rank.
void say_goodbye();
// finalize(), once the backends are shut down, before MPI_Finalize: tells every other rank that this one's transfers
// all completed, ends the thread and frees its communicator.
void stop_job_monitor();

// A member's answer to "what did you issue on this group, and what are you doing?".
struct MemberAnswer {
  int rank = 0;
  bool answered = false;
  int64_t issued = 0;  // collectives it issued on the group
  std::string doing;   // its stuck or latest operation, or that it is in none
};

// The timeout report's question to `ranks` (world ranks, this one left out) about `group`, whose operation `seq`
// timed out here: waits about a second and a half for the answers. Each asked rank also prints its own flight
// recorder. Empty without a monitor.
std::vector<MemberAnswer> ask_members(int64_t group, int64_t seq, const std::vector<int>& ranks);
bool job_monitor_running();

}  // namespace braid::dist::detail
