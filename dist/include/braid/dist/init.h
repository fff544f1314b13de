// Start-up of a distributed program. init() starts MPI (with MPI_THREAD_MULTIPLE, which the MPI process group's
// communication thread needs) when the program was launched by mpirun/mpiexec, and otherwise runs as a single
// process of world size 1 without touching MPI. rank(), world_size() and local_rank() (the rank among the
// processes of this host, from MPI_Comm_split_type(MPI_COMM_TYPE_SHARED)) are valid after init(); finalize()
// runs at exit if the program did not call it.
//
// Under mpirun each rank also runs a job monitor (a thread that wakes every few tens of milliseconds) and keeps a
// flight recorder of its last operations. A rank that leaves (finalize(), or returning from main) tells the others
// how many collectives it issued on each group; a rank that waits for it in a collective it never issued (or, two
// seconds after the leaver's own transfers completed, in a send/recv with it) ends the job with "rank R left the job ... while rank S waits for
// it in <op> #<seq> on group [..]" instead of hanging. A wait past BRAID_DIST_TIMEOUT asks the group's members what
// they issued and are doing, prints that with the recorder's last operations, then ends the job.
#pragma once

#include <string>

#include "braid/core/device.h"

namespace braid::dist {

void init(int argc = 0, char** argv = nullptr);
bool is_initialized();
int rank();
int world_size();
int local_rank();
int local_world_size();
// The device this rank should compute on: CUDA device local_rank() % device_count() when a GPU is visible (one GPU
// per rank of a host, as NCCL wants), else the CPU. Works before init() too (as rank 0 of 1).
Device local_device();
// Ends MPI (waits for outstanding communication first); safe to call twice.
void finalize();
// Ends the whole job, every rank, with `code` after printing `message` to stderr (MPI_Abort under mpirun).
[[noreturn]] void abort(const std::string& message, int code = 1);

}  // namespace braid::dist
