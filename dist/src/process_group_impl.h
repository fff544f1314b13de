// Private to dist/: what init.cpp and the process-group sources share. The process-wide state init() sets up, the
// checked-call macro for MPI, the validation and descriptions every backend uses, and the backends themselves:
// MpiBackend (CPU tensors; a communication thread per group running blocking MPI calls in issue order) and, when
// built with NCCL, the NCCL backend (CUDA tensors; a stream per group).
#pragma once

// Only MPI's C API: Open MPI's mpi.h would otherwise pull in its deprecated C++ bindings, which need libmpi_cxx.
#ifndef OMPI_SKIP_MPICXX
#define OMPI_SKIP_MPICXX 1
#endif
#ifndef MPICH_SKIP_MPICXX
#define MPICH_SKIP_MPICXX 1
#endif
#include <mpi.h>

#include <array>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <exception>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "braid/dist/init.h"
#include "braid/dist/process_group.h"

// Every MPI call goes through this: a failure throws braid::Error with the call, file:line and MPI_Error_string.
#define BRAID_MPI_CHECK(call) ::braid::dist::detail::check_mpi((call), #call, __FILE__, __LINE__)

namespace braid::dist::detail {

void check_mpi(int rc, const char* call, const char* file, int line);

// ---- process-wide state (init.cpp) ----

struct Runtime {
  bool initialized = false;
  bool finalized = false;
  bool mpi = false;       // launched by mpirun: MPI is running
  bool owns_mpi = false;  // init() called MPI_Init_thread, so finalize() calls MPI_Finalize
  int rank = 0;
  int size = 1;
  int local_rank = 0;
  int local_size = 1;
  double timeout_s = 300;  // BRAID_DIST_TIMEOUT
  bool debug = false;      // BRAID_DIST_DEBUG
  bool spin = true;        // short busy-waits before sleeping (BRAID_DIST_SPIN; by default when cores are spare)
};

Runtime& runtime();

// Set by the blocking free functions (dist::all_reduce, ...) around issuing: the caller waits at once, so the MPI
// backend leaves its communication thread asleep and lets the caller run the collective.
extern thread_local bool t_wait_follows;
// Sets t_wait_follows for the operations issued while it lives.
class WaitFollowsHint {
 public:
  explicit WaitFollowsHint(bool on = true) { t_wait_follows = on; }
  ~WaitFollowsHint() { t_wait_follows = false; }
  WaitFollowsHint(const WaitFollowsHint&) = delete;
  WaitFollowsHint& operator=(const WaitFollowsHint&) = delete;
};
// Throws unless init() ran and finalize() did not; `what` names the caller.
const Runtime& require_running(const char* what);

// ---- operation signatures and descriptions (process_group.cpp) ----

enum class OpKind : int32_t { AllReduce, Broadcast, AllGather, ReduceScatter, Send, Recv, Barrier };

const char* op_name(OpKind op);

// A fixed-size, padding-free record of one call, compared across ranks in debug mode (MPI_Allgather as bytes).
struct TensorSignature {
  static constexpr int kMaxDims = 6;
  int32_t defined = 0;
  int32_t dtype = 0;
  int32_t ndim = 0;
  int32_t pad = 0;
  std::array<int64_t, kMaxDims> shape{};
  int64_t numel = 0;
  bool operator==(const TensorSignature&) const = default;
};

struct Signature {
  int32_t op = 0;
  int32_t reduce = 0;
  int32_t root = -1;  // broadcast root, send's dst, recv's src (group ranks)
  int32_t tag = 0;
  TensorSignature a;  // the tensor (all_gather/reduce_scatter: the input)
  TensorSignature b;  // all_gather/reduce_scatter: the output
  bool operator==(const Signature&) const = default;
};
static_assert(sizeof(Signature) == 16 + 2 * (16 + 8 * TensorSignature::kMaxDims + 8), "Signature must have no padding");

TensorSignature tensor_signature(const Tensor& t);
Signature make_signature(OpKind op, ReduceOp reduce, int root, int tag, const Tensor& a, const Tensor& b = Tensor());
// "all_reduce(sum, [4] float32)", "broadcast([4] float32, root 1)", "send([3] int64, dst 1, tag 0)", ...
std::string describe(const Signature& s);

// ---- Work ----

class ThreadWork;

// Whoever queued a ThreadWork may let the thread that waits for it run it (see MpiBackend::run_inline).
class InlineRunner {
 public:
  virtual ~InlineRunner() = default;
  // Runs `work`'s operation on the calling thread and returns true, or returns false if it cannot (already
  // started, or not next in line).
  virtual bool run_inline(ThreadWork& work) = 0;
};

// A Work completed from another thread: wait() first offers to run the operation itself (InlineRunner), else
// sleeps on a condition variable (after a short spin), gives up after the timeout by aborting the job, and
// rethrows the operation's error.
class ThreadWork : public Work {
 public:
  // The description is made from `sig` when asked for (not on every operation), unless `label` is given.
  ThreadWork(const Signature& sig, std::string label, int global_rank, std::weak_ptr<InlineRunner> runner = {})
      : sig_(sig), label_(std::move(label)), rank_(global_rank), runner_(std::move(runner)) {}
  void wait() override;
  bool is_completed() override { return done_.load(std::memory_order_acquire); }
  std::string description() const override { return label_.empty() ? describe(sig_) : label_; }
  void complete(std::exception_ptr error = nullptr);

 private:
  Signature sig_;
  std::string label_;
  int rank_;
  std::weak_ptr<InlineRunner> runner_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<bool> done_{false};
  std::exception_ptr error_;
};

// A Work that finished when it was issued (single-process operations).
class CompletedWork : public Work {
 public:
  explicit CompletedWork(std::string description) : description_(std::move(description)) {}
  void wait() override {}
  bool is_completed() override { return true; }
  std::string description() const override { return description_; }

 private:
  std::string description_;
};

// Prints "braid::dist: <what> on rank R did not complete within T s; aborting the job" and ends the job.
[[noreturn]] void abort_on_timeout(const std::string& what, int global_rank);

// ---- backends ----

// Ops on already validated arguments (ProcessGroup validates, then routes by device).
class Backend {
 public:
  virtual ~Backend() = default;
  virtual WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) = 0;
  virtual WorkHandle broadcast(const Tensor& tensor, int root) = 0;
  virtual WorkHandle all_gather(const Tensor& output, const Tensor& input) = 0;
  virtual WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) = 0;
  virtual WorkHandle send(const Tensor& tensor, int dst, int tag) = 0;
  virtual WorkHandle recv(const Tensor& tensor, int src, int tag) = 0;
  virtual WorkHandle barrier() = 0;
  // Finishes outstanding operations (aborting the job past the timeout) and releases the backend's resources;
  // later operations throw. `at_exit`: called from the atexit handler (other libraries may be torn down).
  virtual void shutdown(bool at_exit) = 0;
};

// CPU tensors over MPI. Owns `comm` (freed at shutdown). One communication thread runs the operations in issue
// order: collectives as blocking MPI calls, send/recv as MPI_Isend/MPI_Irecv that the thread then polls, so a send
// never blocks the collectives and receives issued after it (two ranks sending to each other do not deadlock).
// A caller that waits for a collective nobody has started yet, next in line, runs it on its own thread instead
// (run_inline); the communication thread then watches the clock for it.
class MpiBackend : public Backend, public InlineRunner, public std::enable_shared_from_this<MpiBackend> {
 public:
  MpiBackend(MPI_Comm comm, std::vector<int> global_ranks);
  ~MpiBackend() override;
  int rank() const { return rank_; }
  int size() const { return size_; }
  int global_rank() const { return global_ranks_[size_t(rank_)]; }

  WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(const Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& output, const Tensor& input) override;
  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override;
  WorkHandle send(const Tensor& tensor, int dst, int tag) override;
  WorkHandle recv(const Tensor& tensor, int src, int tag) override;
  WorkHandle barrier() override;
  void shutdown(bool at_exit) override;
  bool run_inline(ThreadWork& work) override;

  // Runs fn(comm) on the communication thread, in order with the group's other operations (the NCCL backend
  // broadcasts its unique id this way).
  WorkHandle submit(std::string description, std::function<void(MPI_Comm)> fn);
  // Debug mode for the NCCL backend's collectives: compares `sig` across the group (MPI_Allgather on the
  // communication thread); the Work's wait() throws the mismatch.
  WorkHandle verify(const Signature& sig);

  struct Task;
  struct PendingP2P;

 private:
  WorkHandle enqueue(std::unique_ptr<Task> task);
  void run_loop();
  // Runs a collective; returns its Work and error, for the caller to complete once it has given back the turn.
  std::pair<std::shared_ptr<ThreadWork>, std::exception_ptr> run_collective(Task& task);
  // Takes the next queued task if no one is running one (mutex_ held); null if it may not.
  std::unique_ptr<Task> take_next();
  void release_turn();
  void start_p2p(std::unique_ptr<Task> task);
  bool poll_p2p();
  void check_signatures(const Signature& mine);

  MPI_Comm comm_;
  MPI_Comm debug_comm_ = MPI_COMM_NULL;  // debug mode: send/recv signatures travel here
  std::vector<int> global_ranks_;
  int rank_ = 0;
  int size_ = 0;
  int tag_ub_ = 32767;

  std::mutex mutex_;
  std::condition_variable cv_;
  std::deque<std::unique_ptr<Task>> queue_;
  std::atomic<size_t> queued_{0};
  // A thread (the communication thread or an inline waiter) is running a task taken from the queue: tasks run one
  // at a time, in queue order, whoever runs them. Written under mutex_.
  std::atomic<bool> busy_{false};
  // While a waiter runs a collective inline: when it times out (steady_clock nanoseconds; 0 when none).
  std::atomic<int64_t> inline_deadline_ns_{0};
  bool stopping_ = false;
  bool stopped_ = false;  // shutdown finished: no thread, no communicator
  std::condition_variable idle_cv_;
  bool thread_done_ = false;
  std::vector<std::unique_ptr<PendingP2P>> pending_;  // only the communication thread touches it
  Signature current_sig_;                             // the operation started last (named if finalize times out)
  std::string current_label_;
  std::thread thread_;
};

#if BRAID_WITH_NCCL
// CUDA tensors over NCCL on `device`; the NCCL unique id of group rank 0 reaches the others over `mpi` (null in a
// single process, where the group has one rank).
std::shared_ptr<Backend> make_nccl_backend(std::shared_ptr<MpiBackend> mpi, int device, int global_rank);
#endif

// ---- groups (process_group.cpp) ----

// The world group, made by init().
std::shared_ptr<ProcessGroup> make_world_group();
// Every backend of every group, so finalize() can shut them down before MPI_Finalize.
void register_backend(const std::shared_ptr<Backend>& backend);
void shutdown_backends(bool at_exit);
std::shared_ptr<ProcessGroup>& world_slot();

}  // namespace braid::dist::detail
