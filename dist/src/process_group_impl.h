// Private to dist/: what init.cpp and the process-group sources share. The process-wide state init() sets up, the
// checked-call macro for MPI, the validation and descriptions every backend uses, and the backends themselves:
// MpiBackend (CPU tensors of one group; its operations run on this rank's one CommThread, shared by every group)
// and, when built with NCCL, the NCCL backend (CUDA tensors; a communicator and stream per group for collectives,
// another pair for point-to-point).
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
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "braid/dist/init.h"
#include "braid/dist/process_group.h"
#include "group_ranks.h"
#include "wait_follows_hint.h"

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

// Throws unless init() ran and finalize() did not; `what` names the caller.
const Runtime& require_running(const char* what);

// ---- operation signatures and descriptions (process_group.cpp) ----

enum class OpKind : int32_t {
  AllReduce,
  Broadcast,
  AllGather,
  ReduceScatter,
  Reduce,
  Gather,
  Scatter,
  AllToAll,
  Send,
  Recv,
  Barrier,
  NewGroup
};

const char* op_name(OpKind op);

// A fixed-size, padding-free record of one call. Every collective's is compared across its group before any data
// moves: by default through a 64-bit fingerprint (one small MPI_Allreduce), in debug mode and after a fingerprint
// mismatch as whole records (MPI_Allgather as bytes), so the error can say what each rank passed.
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
  int32_t root = -1;  // broadcast/scatter root, reduce/gather dst, send's dst, recv's src (group ranks)
  int32_t tag = 0;
  TensorSignature a;  // the tensor (all_gather/reduce_scatter/all_to_all: the input; gather: the input; scatter:
                      // the output: what every rank passes alike)
  TensorSignature b;  // all_gather/reduce_scatter/all_to_all: the output
  // Collectives: this rank's count of checked operations on the group, 1 for the first (a rank that skipped or
  // repeated one disagrees here even where the operations look alike). 0 for send, recv and batches.
  int64_t seq = 0;
  // new_group: a fingerprint of the whole list of ranks (`a` holds the list's length and its first ranks).
  uint64_t list_hash = 0;
  bool operator==(const Signature&) const = default;
};
static_assert(sizeof(Signature) == 16 + 2 * (16 + 8 * TensorSignature::kMaxDims + 8) + 16,
              "Signature must have no padding");

// A 64-bit hash of every field (equal signatures give equal fingerprints; different ones almost never collide).
uint64_t fingerprint(const Signature& s);
// new_group's signature: the list's length, its first kMaxDims ranks and a hash of all of them.
Signature new_group_signature(const std::vector<int>& ranks);

TensorSignature tensor_signature(const Tensor& t);
Signature make_signature(OpKind op, ReduceOp reduce, int root, int tag, const Tensor& a, const Tensor& b = Tensor());
// "all_reduce(sum, [4] float32)", "broadcast([4] float32, root 1)", "send([3] int64, dst 1, tag 0)", ...
std::string describe(const Signature& s);
// "batch_isend_irecv(isend([4] float32, dst 1, tag 0), irecv([4] float32, src 2, tag 0))"
std::string describe_batch(const std::vector<P2POp>& ops);

// ---- Work ----

class ThreadWork;

// Whoever queued a ThreadWork may let the thread that waits for it run it (see CommThread::run_inline).
class InlineRunner {
 public:
  virtual ~InlineRunner() = default;
  // Runs `work`'s operation on the calling thread and returns true, or returns false if it cannot (already
  // started, or not next in line).
  virtual bool run_inline(ThreadWork& work) = 0;
  // Makes sure the communication thread runs what is queued (an operation issued with the wait-follows hint does
  // not wake it; a waiter that does not run it inline wakes it).
  virtual void wake() = 0;
};

// A Work completed from another thread: wait() first offers to run the operation itself (InlineRunner), else
// sleeps on a condition variable (after a short spin), gives up after the timeout by aborting the job, and
// rethrows the operation's error.
class ThreadWork : public Work {
 public:
  // The description is made from `sig` when asked for (not on every operation), unless `label` is given.
  // `runner` (null or process-wide, never destroyed) may run the operation on the waiting thread.
  ThreadWork(const Signature& sig, std::string label, int global_rank, InlineRunner* runner = nullptr)
      : sig_(sig), label_(std::move(label)), rank_(global_rank), runner_(runner) {}
  void wait() override;
  bool wait(std::chrono::milliseconds timeout) override;
  bool is_completed() override { return done_.load(std::memory_order_acquire); }
  std::exception_ptr exception() override;
  std::string description() const override { return label_.empty() ? describe(sig_) : label_; }
  void complete(std::exception_ptr error = nullptr);
  // When complete() ran, stamped only while a trace is recorded (braid/dist/trace.h); empty otherwise.
  std::optional<std::chrono::steady_clock::time_point> completed_at() const;

 private:
  Signature sig_;
  std::string label_;
  int rank_;
  InlineRunner* runner_;
  std::mutex mutex_;
  std::condition_variable cv_;
  std::atomic<bool> done_{false};
  std::atomic<int64_t> completed_ns_{0};
  std::exception_ptr error_;
};

// A Work that finished when it was issued (single-process operations).
class CompletedWork : public Work {
 public:
  explicit CompletedWork(std::string description) : description_(std::move(description)) {}
  void wait() override {}
  bool wait(std::chrono::milliseconds) override { return true; }
  bool is_completed() override { return true; }
  std::exception_ptr exception() override { return nullptr; }
  std::string description() const override { return description_; }

 private:
  std::string description_;
};

// Thrown by the debug checks: its message is already the whole story, so it is not prefixed with the operation.
struct MismatchError : Error {
  using Error::Error;
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
  virtual WorkHandle reduce(const Tensor& tensor, int dst, ReduceOp op) = 0;
  // output is undefined on ranks other than dst, input on ranks other than src.
  virtual WorkHandle gather(const Tensor& output, const Tensor& input, int dst) = 0;
  virtual WorkHandle scatter(const Tensor& output, const Tensor& input, int src) = 0;
  virtual WorkHandle all_to_all(const Tensor& output, const Tensor& input) = 0;
  virtual WorkHandle send(const Tensor& tensor, int dst, int tag) = 0;
  virtual WorkHandle recv(const Tensor& tensor, int src, int tag) = 0;
  virtual WorkHandle batch_isend_irecv(const std::vector<P2POp>& ops) = 0;
  virtual WorkHandle barrier() = 0;
  // Finishes outstanding operations (aborting the job past the timeout) and releases the backend's resources;
  // later operations throw. `at_exit`: called from the atexit handler (other libraries may be torn down).
  virtual void shutdown(bool at_exit) = 0;
};

class MpiBackend;

// One operation of an MpiBackend, queued on the CommThread.
struct MpiTask {
  MpiBackend* owner = nullptr;  // outlives the task: closing a backend waits for its tasks
  Signature sig;
  std::string label;  // set for internal operations and batches, which have no signature
  std::string description() const { return label.empty() ? describe(sig) : label; }
  bool check_signature = false;  // collectives (and new_group): compared across the group before they run
  std::shared_ptr<ThreadWork> work;
  std::vector<Tensor> tensors;  // kept alive until the operation finished
  std::function<void(MPI_Comm)> collective;
  // send/recv (set: a point-to-point task): post the requests (in order), then check what arrived once all
  // completed.
  std::function<void(std::vector<MPI_Request>&)> start;
  std::function<void(const std::vector<MPI_Status>&)> finish;
};

// The one communication thread of this rank, shared by every group's MpiBackend (a thread per group would not
// scale to data x tensor x pipeline groups). It runs the collectives of all groups from one queue, in the order
// this rank issued them, as blocking MPI calls over their group's communicator. send/recv are posted
// (MPI_Isend/MPI_Irecv) on the issuing thread at once and polled by this thread after every collective and while
// idle (they progress inside the blocking collectives too), so a transfer of one group neither waits behind nor is
// starved by another group's collectives.
// A caller that waits for a collective nobody has started yet, next in line, runs it on its own thread instead
// (run_inline); the thread then watches the clock for it. The thread starts with the first task and ends at
// finalize().
class CommThread : public InlineRunner {
 public:
  static CommThread& instance();  // never destroyed: finalize can run from atexit
  WorkHandle enqueue(std::unique_ptr<MpiTask> task);
  bool run_inline(ThreadWork& work) override;
  void wake() override;
  // Refuses `owner`'s new tasks and waits until its queued and pending ones completed (aborting the job past the
  // timeout).
  void close(MpiBackend& owner);
  // Ends the thread once everything queued ran (finalize(), after every backend closed).
  void stop();
  // Threads started so far (one per process at most; the tests check that groups do not add any).
  int threads_started() const { return threads_started_.load(); }

 private:
  struct PendingP2P;
  CommThread() = default;
  void run_loop();
  std::pair<std::shared_ptr<ThreadWork>, std::exception_ptr> run_collective(MpiTask& task);
  // Takes the next queued task if no one is running one (mutex_ held); null if it may not.
  std::unique_ptr<MpiTask> take_next();
  // Gives back the turn; `finished`: the owner whose task just completed (its count drops).
  void release_turn();
  void finished(MpiBackend* owner);
  void admit(MpiTask& task);
  // Posts a point-to-point task's requests on the calling thread and hands them to this thread to poll.
  void post(std::unique_ptr<MpiTask> task);
  void take_incoming();
  bool poll_p2p();
  void watch_inline();

  std::mutex mutex_;
  std::condition_variable cv_;
  std::condition_variable idle_cv_;  // a backend's last task completed, or the thread ended
  std::deque<std::unique_ptr<MpiTask>> queue_;
  std::atomic<size_t> queued_{0};
  // A thread (this one or an inline waiter) is running a task taken from the queue: tasks run one at a time, in
  // queue order, whoever runs them. Written under mutex_.
  std::atomic<bool> busy_{false};
  // While a waiter runs a collective inline: when it times out (steady_clock nanoseconds; 0 when none).
  std::atomic<int64_t> inline_deadline_ns_{0};
  bool stopping_ = false;
  bool running_ = false;  // the thread exists
  std::atomic<int> threads_started_{0};
  std::mutex post_mutex_;  // posting order is issue order, whichever threads issue
  std::vector<std::unique_ptr<PendingP2P>> incoming_;  // posted, not yet taken by the thread (under mutex_)
  std::atomic<bool> has_incoming_{false};
  std::vector<std::unique_ptr<PendingP2P>> pending_;  // only the communication thread touches it
  // The task started last, named if a wait times out (under mutex_).
  Signature current_sig_;
  std::string current_label_;
  std::string current_description() const { return current_label_.empty() ? describe(current_sig_) : current_label_; }
  std::thread thread_;
};

// CPU tensors of one group over MPI. Owns `comm` (freed at shutdown); its operations run on the CommThread.
class MpiBackend : public Backend {
 public:
  // `group_id`: 0 for the world; a new_group's group has the number of its creation among the world's checked
  // operations (the same on every rank, members or not).
  MpiBackend(MPI_Comm comm, std::vector<int> global_ranks, int64_t group_id);
  ~MpiBackend() override;
  int rank() const { return rank_; }
  int size() const { return size_; }
  int global_rank() const { return global_ranks_[size_t(rank_)]; }
  const std::vector<int>& global_ranks() const { return global_ranks_; }
  int64_t group_id() const { return group_id_; }
  MPI_Comm comm() const { return comm_; }

  WorkHandle all_reduce(const Tensor& tensor, ReduceOp op) override;
  WorkHandle broadcast(const Tensor& tensor, int root) override;
  WorkHandle all_gather(const Tensor& output, const Tensor& input) override;
  WorkHandle reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) override;
  WorkHandle reduce(const Tensor& tensor, int dst, ReduceOp op) override;
  WorkHandle gather(const Tensor& output, const Tensor& input, int dst) override;
  WorkHandle scatter(const Tensor& output, const Tensor& input, int src) override;
  WorkHandle all_to_all(const Tensor& output, const Tensor& input) override;
  WorkHandle send(const Tensor& tensor, int dst, int tag) override;
  WorkHandle recv(const Tensor& tensor, int src, int tag) override;
  WorkHandle batch_isend_irecv(const std::vector<P2POp>& ops) override;
  WorkHandle barrier() override;
  void shutdown(bool at_exit) override;

  // Runs fn(comm) on the communication thread, in order with the other operations (the NCCL backend broadcasts
  // its unique id this way).
  WorkHandle submit(std::string description, std::function<void(MPI_Comm)> fn);
  // For the NCCL backend's collectives: compares `sig` across the group (on the communication thread, in order with
  // this group's other operations); the Work's wait() throws the mismatch.
  WorkHandle verify(const Signature& sig);
  // Makes the communicator of the group of `ranks` (global ranks) out of this one, the world's: every world rank
  // takes part in the check, the members then in MPI_Comm_create_group. *id gets the group's id at once (the same
  // on every rank once the Work completed without error); the new communicator lands in *out (MPI_COMM_NULL on
  // non-members) when the Work completes.
  WorkHandle create_group(const std::vector<int>& ranks, int64_t* id, MPI_Comm* out);
  // Compares `mine` across the group (communication thread): the fingerprints by default, the whole signatures in
  // debug mode or once the fingerprints differ. A mismatch throws MismatchError naming every rank's call.
  void check_signatures(const Signature& mine);

 private:
  friend class CommThread;
  WorkHandle enqueue(std::unique_ptr<MpiTask> task);
  WorkHandle p2p(Signature sig, std::string label, const std::vector<P2POp>& ops);
  // Exchanges whole signatures and throws the mismatch (does nothing if all agree).
  void compare_signatures(const Signature& mine);

  MPI_Comm comm_;
  MPI_Comm debug_comm_ = MPI_COMM_NULL;  // debug mode: send/recv signatures travel here
  std::vector<int> global_ranks_;
  int64_t group_id_ = 0;
  int64_t seq_ = 0;  // checked operations issued so far (ProcessGroup keeps each group to one issuing thread)
  int rank_ = 0;
  int size_ = 0;
  int tag_ub_ = 32767;
  // Guarded by the CommThread's mutex.
  bool closed_ = false;
  size_t outstanding_ = 0;  // tasks queued, running or pending
  std::mutex shutdown_mutex_;
  bool stopped_ = false;  // shutdown finished: no communicator
};

#if BRAID_WITH_NCCL
// CUDA tensors over NCCL on `device`; the NCCL unique id of group rank 0 reaches the others over `mpi`.
std::shared_ptr<Backend> make_nccl_backend(std::shared_ptr<MpiBackend> mpi, int device, int global_rank);
#endif

// ---- groups (process_group.cpp) ----

// The world group, made by init().
std::shared_ptr<ProcessGroup> make_world_group();
// Every backend of every group, so finalize() can shut them down before MPI_Finalize.
void register_backend(const std::shared_ptr<Backend>& backend);
// Shuts every backend down, then the communication thread.
void shutdown_backends(bool at_exit);
std::shared_ptr<ProcessGroup>& world_slot();

}  // namespace braid::dist::detail
