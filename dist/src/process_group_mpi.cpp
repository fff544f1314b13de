// The MPI backend. Debian's Open MPI 4.1.4 makes no progress on non-blocking collectives outside MPI calls, and its
// MPI_Iallreduce is far slower than MPI_Allreduce, so each group runs blocking collectives, in issue order, on a
// communication thread of its own over its own communicator (as PyTorch's MPI process group does). The caller only
// queues the operation; the thread completes its Work.
//
// send/recv: the thread posts MPI_Isend/MPI_Irecv in issue order (so messages between two ranks match in the order
// they were issued) and polls them between other operations, instead of blocking in MPI_Send/MPI_Recv: two ranks
// that each send to the other and then receive would otherwise both sit in MPI_Send forever. Pending transfers also
// progress inside the blocking collectives the thread runs. A recv checks that the message had the expected size.
#include <algorithm>
#include <chrono>
#include <climits>
#include <cstring>

#include "process_group_impl.h"

namespace braid::dist::detail {

namespace {

MPI_Datatype mpi_dtype(DType t) {
  switch (t) {
    case DType::Float32:
      return MPI_FLOAT;
    case DType::Float64:
      return MPI_DOUBLE;
    case DType::Int64:
      return MPI_INT64_T;
  }
  BRAID_FAIL("MPI process group: unsupported dtype ", t);
}

MPI_Op mpi_op(ReduceOp op) {
  switch (op) {
    case ReduceOp::Sum:
    case ReduceOp::Avg:
      return MPI_SUM;
    case ReduceOp::Max:
      return MPI_MAX;
    case ReduceOp::Min:
      return MPI_MIN;
  }
  BRAID_FAIL("MPI process group: unknown reduce op");
}

// MPI counts are ints: element-wise operations on bigger tensors go in pieces of at most INT_MAX elements (an empty
// tensor still makes one call, so every rank makes the same calls).
template <class Fn>
void for_each_piece(void* data, int64_t numel, DType dtype, Fn&& fn) {
  char* p = static_cast<char*>(data);
  do {
    int count = int(std::min<int64_t>(numel, INT_MAX));
    fn(p, count);
    p += size_t(count) * element_size(dtype);
    numel -= count;
  } while (numel > 0);
}

int checked_count(const char* op, int64_t numel) {
  BRAID_CHECK(numel <= INT_MAX, op, ": ", numel, " elements per rank is more than MPI's int count allows (", INT_MAX,
              ")");
  return int(numel);
}

// Avg: the sum divided by the group size (integers truncate toward zero, as NCCL's ncclAvg does).
void divide(const Tensor& t, int size) {
  dispatch_all(t.dtype(), [&](auto tag) {
    using T = typename decltype(tag)::type;
    T* p = static_cast<T*>(t.raw_data());
    const T d = T(size);
    const int64_t n = t.numel();
    for (int64_t i = 0; i < n; ++i) p[i] = p[i] / d;
  });
}

// Thrown by the debug check: its message is already the whole story, so it is not prefixed with the operation.
struct MismatchError : Error {
  using Error::Error;
};

}  // namespace

struct MpiBackend::Task {
  Signature sig;
  std::string label;  // set for internal operations, which have no signature
  std::string description() const { return label.empty() ? describe(sig) : label; }
  bool check_signature = false;  // collectives in debug mode
  std::shared_ptr<ThreadWork> work;
  std::vector<Tensor> tensors;  // kept alive until the operation finished
  std::function<void(MPI_Comm)> collective;
  // send/recv: post the requests (in order), then check what arrived once all completed.
  std::function<void(std::vector<MPI_Request>&)> start;
  std::function<void(const std::vector<MPI_Status>&)> finish;
};

struct MpiBackend::PendingP2P {
  std::unique_ptr<Task> task;
  std::vector<MPI_Request> requests;
  std::vector<MPI_Status> statuses;
  size_t next = 0;  // requests before this one have completed (they complete in order)
  std::exception_ptr error;
};

MpiBackend::MpiBackend(MPI_Comm comm, std::vector<int> global_ranks)
    : comm_(comm), global_ranks_(std::move(global_ranks)) {
  BRAID_MPI_CHECK(MPI_Comm_set_errhandler(comm_, MPI_ERRORS_RETURN));
  BRAID_MPI_CHECK(MPI_Comm_rank(comm_, &rank_));
  BRAID_MPI_CHECK(MPI_Comm_size(comm_, &size_));
  BRAID_CHECK(size_t(size_) == global_ranks_.size(), "MpiBackend: communicator of ", size_, " ranks for ",
              global_ranks_.size(), " global ranks");
  int* tag_ub = nullptr;
  int has_tag_ub = 0;
  BRAID_MPI_CHECK(MPI_Comm_get_attr(comm_, MPI_TAG_UB, &tag_ub, &has_tag_ub));
  if (has_tag_ub && tag_ub) tag_ub_ = *tag_ub;
  if (runtime().debug) {
    BRAID_MPI_CHECK(MPI_Comm_dup(comm_, &debug_comm_));
    BRAID_MPI_CHECK(MPI_Comm_set_errhandler(debug_comm_, MPI_ERRORS_RETURN));
  }
  thread_ = std::thread([this] { run_loop(); });
}

MpiBackend::~MpiBackend() {
  try {
    shutdown(false);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "braid::dist: closing a process group failed: %s\n", e.what());
  }
}

// ---- issuing (caller's thread) ----

WorkHandle MpiBackend::enqueue(std::unique_ptr<Task> task) {
  task->work = std::make_shared<ThreadWork>(task->sig, task->label, global_rank(), weak_from_this());
  WorkHandle handle = task->work;
  bool quiet = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    BRAID_CHECK(!stopping_, task->description(),
                ": the process group was shut down (braid::dist::finalize() was called)");
    quiet = t_wait_follows && !task->start && queue_.empty() && !busy_;
    queue_.push_back(std::move(task));
    queued_.fetch_add(1, std::memory_order_release);
  }
  // A blocking call's collective, first in line, runs on the caller's thread in its wait() (run_inline): waking
  // this thread for it would only take a core from the ranks doing the work.
  if (!quiet) cv_.notify_one();
  return handle;
}

WorkHandle MpiBackend::submit(std::string description, std::function<void(MPI_Comm)> fn) {
  auto task = std::make_unique<Task>();
  task->label = std::move(description);
  task->collective = std::move(fn);
  return enqueue(std::move(task));
}

namespace {

std::unique_ptr<MpiBackend::Task> make_task(const Signature& sig, std::vector<Tensor> tensors) {
  auto task = std::make_unique<MpiBackend::Task>();
  task->sig = sig;
  task->tensors = std::move(tensors);
  return task;
}

}  // namespace

WorkHandle MpiBackend::all_reduce(const Tensor& tensor, ReduceOp op) {
  auto task = make_task(make_signature(OpKind::AllReduce, op, -1, 0, tensor), {tensor});
  task->check_signature = runtime().debug;
  int size = size_;
  task->collective = [tensor, op, size](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(), [&](void* p, int count) {
      BRAID_MPI_CHECK(MPI_Allreduce(MPI_IN_PLACE, p, count, type, mpi_op(op), comm));
    });
    if (op == ReduceOp::Avg) divide(tensor, size);
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::broadcast(const Tensor& tensor, int root) {
  auto task = make_task(make_signature(OpKind::Broadcast, ReduceOp::Sum, root, 0, tensor), {tensor});
  task->check_signature = runtime().debug;
  task->collective = [tensor, root](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(),
                   [&](void* p, int count) { BRAID_MPI_CHECK(MPI_Bcast(p, count, type, root, comm)); });
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::all_gather(const Tensor& output, const Tensor& input) {
  int count = checked_count("all_gather", input.numel());
  auto task = make_task(make_signature(OpKind::AllGather, ReduceOp::Sum, -1, 0, input, output), {output, input});
  task->check_signature = runtime().debug;
  // The input may be the output's own chunk (ProcessGroup checked that it overlaps nothing else): MPI_IN_PLACE.
  bool in_place = input.raw_data() ==
                  static_cast<char*>(output.raw_data()) + size_t(count) * size_t(rank_) * element_size(input.dtype());
  task->collective = [output, input, count, in_place](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(input.dtype());
    BRAID_MPI_CHECK(
        MPI_Allgather(in_place ? MPI_IN_PLACE : input.raw_data(), count, type, output.raw_data(), count, type, comm));
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::reduce_scatter(const Tensor& output, const Tensor& input, ReduceOp op) {
  int count = checked_count("reduce_scatter", output.numel());
  auto task = make_task(make_signature(OpKind::ReduceScatter, op, -1, 0, input, output), {output, input});
  task->check_signature = runtime().debug;
  int size = size_;
  task->collective = [output, input, count, op, size](MPI_Comm comm) {
    MPI_Datatype type = mpi_dtype(input.dtype());
    BRAID_MPI_CHECK(MPI_Reduce_scatter_block(input.raw_data(), output.raw_data(), count, type, mpi_op(op), comm));
    if (op == ReduceOp::Avg) divide(output, size);
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::verify(const Signature& sig) {
  auto task = std::make_unique<Task>();
  task->sig = sig;
  task->check_signature = true;
  task->collective = [](MPI_Comm) {};
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::send(const Tensor& tensor, int dst, int tag) {
  BRAID_CHECK(tag <= tag_ub_, "send: tag ", tag, " is above MPI's largest tag (", tag_ub_, ")");
  auto task = make_task(make_signature(OpKind::Send, ReduceOp::Sum, dst, tag, tensor), {tensor});
  MPI_Comm comm = comm_, debug_comm = debug_comm_;
  auto sig = std::make_shared<Signature>(task->sig);
  task->start = [tensor, dst, tag, comm, debug_comm, sig](std::vector<MPI_Request>& requests) {
    // Debug mode: the receiver compares this signature with what it expected.
    if (debug_comm != MPI_COMM_NULL) {
      requests.emplace_back();
      BRAID_MPI_CHECK(MPI_Isend(sig.get(), int(sizeof(Signature)), MPI_BYTE, dst, tag, debug_comm, &requests.back()));
    }
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(), [&](void* p, int count) {
      requests.emplace_back();
      BRAID_MPI_CHECK(MPI_Isend(p, count, type, dst, tag, comm, &requests.back()));
    });
  };
  task->finish = [](const std::vector<MPI_Status>&) {};
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::recv(const Tensor& tensor, int src, int tag) {
  BRAID_CHECK(tag <= tag_ub_, "recv: tag ", tag, " is above MPI's largest tag (", tag_ub_, ")");
  auto task = make_task(make_signature(OpKind::Recv, ReduceOp::Sum, src, tag, tensor), {tensor});
  MPI_Comm comm = comm_, debug_comm = debug_comm_;
  auto peer = std::make_shared<Signature>();
  Signature mine = task->sig;
  std::string description = task->description();
  int src_global = global_ranks_[size_t(src)], my_global = global_rank();
  task->start = [tensor, src, tag, comm, debug_comm, peer](std::vector<MPI_Request>& requests) {
    if (debug_comm != MPI_COMM_NULL) {
      requests.emplace_back();
      BRAID_MPI_CHECK(MPI_Irecv(peer.get(), int(sizeof(Signature)), MPI_BYTE, src, tag, debug_comm, &requests.back()));
    }
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for_each_piece(tensor.raw_data(), tensor.numel(), tensor.dtype(), [&](void* p, int count) {
      requests.emplace_back();
      BRAID_MPI_CHECK(MPI_Irecv(p, count, type, src, tag, comm, &requests.back()));
    });
  };
  task->finish = [tensor, debug_comm, peer, mine, description, src_global,
                  my_global](const std::vector<MPI_Status>& statuses) {
    size_t first = 0;
    if (debug_comm != MPI_COMM_NULL) {
      first = 1;
      bool match = OpKind(peer->op) == OpKind::Send && peer->a.dtype == mine.a.dtype && peer->a.numel == mine.a.numel;
      if (!match)
        throw MismatchError("recv: ranks disagree: rank " + std::to_string(my_global) + " passed " + description +
                            ", rank " + std::to_string(src_global) + " passed " + describe(*peer));
    }
    int64_t received = 0;
    MPI_Datatype type = mpi_dtype(tensor.dtype());
    for (size_t i = first; i < statuses.size(); ++i) {
      int count = 0;
      BRAID_MPI_CHECK(MPI_Get_count(&statuses[i], type, &count));
      received += count;
    }
    BRAID_CHECK(received == tensor.numel(), "rank ", src_global, " sent ", received, " elements, the tensor holds ",
                tensor.numel());
  };
  return enqueue(std::move(task));
}

WorkHandle MpiBackend::barrier() {
  auto task = make_task(make_signature(OpKind::Barrier, ReduceOp::Sum, -1, 0, Tensor()), {});
  task->check_signature = runtime().debug;
  task->collective = [](MPI_Comm comm) { BRAID_MPI_CHECK(MPI_Barrier(comm)); };
  return enqueue(std::move(task));
}

// ---- the communication thread ----

void MpiBackend::check_signatures(const Signature& mine) {
  std::vector<Signature> all(static_cast<size_t>(size_));
  BRAID_MPI_CHECK(
      MPI_Allgather(&mine, int(sizeof(Signature)), MPI_BYTE, all.data(), int(sizeof(Signature)), MPI_BYTE, comm_));
  if (std::all_of(all.begin(), all.end(), [&](const Signature& s) { return s == mine; })) return;
  std::string msg = std::string(op_name(OpKind(mine.op))) + ": ranks disagree:";
  for (int r = 0; r < size_; ++r)
    msg += std::string(r ? "," : "") + " rank " + std::to_string(global_ranks_[size_t(r)]) + " passed " +
           describe(all[size_t(r)]);
  throw MismatchError(msg);
}

std::pair<std::shared_ptr<ThreadWork>, std::exception_ptr> MpiBackend::run_collective(Task& task) {
  std::exception_ptr error;
  try {
    if (task.check_signature) check_signatures(task.sig);
    task.collective(comm_);
  } catch (const MismatchError&) {
    error = std::current_exception();
  } catch (const std::exception& e) {
    error = std::make_exception_ptr(
        Error(task.description() + " on rank " + std::to_string(global_rank()) + " failed: " + e.what()));
  } catch (...) {
    error = std::current_exception();
  }
  std::shared_ptr<ThreadWork> work = std::move(task.work);
  task.tensors.clear();
  return {std::move(work), std::move(error)};
}

std::unique_ptr<MpiBackend::Task> MpiBackend::take_next() {
  if (busy_.load(std::memory_order_relaxed) || queue_.empty()) return nullptr;
  std::unique_ptr<Task> task = std::move(queue_.front());
  queue_.pop_front();
  queued_.fetch_sub(1, std::memory_order_relaxed);
  busy_.store(true, std::memory_order_relaxed);
  current_sig_ = task->sig;
  current_label_ = task->label;
  return task;
}

void MpiBackend::release_turn() {
  bool waiting;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_.store(false, std::memory_order_relaxed);
    inline_deadline_ns_.store(0, std::memory_order_relaxed);
    waiting = !queue_.empty() || stopping_;
  }
  if (waiting) cv_.notify_all();  // the communication thread may be waiting for its turn
}

// The caller's thread runs the collective it waits for when the communication thread has not taken it yet and
// nothing runs before it: the common "issue, then wait at once" pattern then costs no thread hand-off (a few
// microseconds each way, most of a small all-reduce). send/recv stay on the communication thread, which polls them.
// The communication thread meanwhile watches the clock, so a collective that never completes still aborts the job
// after BRAID_DIST_TIMEOUT.
bool MpiBackend::run_inline(ThreadWork& work) {
  std::unique_ptr<Task> task;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (stopped_ || queue_.empty() || queue_.front()->work.get() != &work || queue_.front()->start) return false;
    task = take_next();
    if (!task) return false;
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::duration<double>(std::min(runtime().timeout_s, 1e9)));
    inline_deadline_ns_.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
  }
  auto [done, error] = run_collective(*task);
  release_turn();
  done->complete(std::move(error));
  return true;
}

void MpiBackend::start_p2p(std::unique_ptr<Task> task) {
  auto pending = std::make_unique<PendingP2P>();
  try {
    task->start(pending->requests);
  } catch (const std::exception& e) {
    // Requests already posted stay with the pending entry (they must finish before the tensor may go).
    pending->error = std::make_exception_ptr(
        Error(task->description() + " on rank " + std::to_string(global_rank()) + " failed: " + e.what()));
  }
  pending->statuses.resize(pending->requests.size());
  pending->task = std::move(task);
  pending_.push_back(std::move(pending));
}

bool MpiBackend::poll_p2p() {
  bool progressed = false;
  for (auto it = pending_.begin(); it != pending_.end();) {
    PendingP2P& p = **it;
    while (p.next < p.requests.size()) {
      int flag = 0;
      int rc = MPI_Test(&p.requests[p.next], &flag, &p.statuses[p.next]);
      if (rc != MPI_SUCCESS) {
        // An error completes the request (a truncated receive, for instance); keep the first one.
        if (!p.error) {
          try {
            check_mpi(rc, "MPI_Test", __FILE__, __LINE__);
          } catch (const std::exception& e) {
            p.error = std::make_exception_ptr(
                Error(p.task->description() + " on rank " + std::to_string(global_rank()) + " failed: " + e.what()));
          }
        }
        flag = 1;
      }
      if (!flag) break;
      ++p.next;
      progressed = true;
    }
    if (p.next < p.requests.size()) {
      ++it;
      continue;
    }
    std::exception_ptr error = p.error;
    try {
      p.task->finish(p.statuses);
    } catch (const MismatchError&) {
      error = std::current_exception();  // says more than the MPI error it may have caused
    } catch (const std::exception& e) {
      if (!error)
        error = std::make_exception_ptr(
            Error(p.task->description() + " on rank " + std::to_string(global_rank()) + " failed: " + e.what()));
    }
    std::shared_ptr<ThreadWork> work = std::move(p.task->work);
    it = pending_.erase(it);           // drops the tensors
    work->complete(std::move(error));  // moved: the waiter may drop the last reference
  }
  return progressed;
}

void MpiBackend::run_loop() {
  using clock = std::chrono::steady_clock;
  const bool spin = runtime().spin;
  auto last_work = clock::now();
  // A collective a waiter runs inline past its deadline ends the job, as a wait on this thread's work would.
  auto watch_inline = [&] {
    int64_t deadline = inline_deadline_ns_.load(std::memory_order_relaxed);
    if (deadline != 0 && clock::now().time_since_epoch().count() >= deadline) {
      std::lock_guard<std::mutex> lock(mutex_);
      if (inline_deadline_ns_.load(std::memory_order_relaxed) == deadline)
        abort_on_timeout(current_label_.empty() ? describe(current_sig_) : current_label_, global_rank());
    }
  };
  const auto watch_period = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(std::clamp(runtime().timeout_s / 20, 0.01, 1.0)));
  for (;;) {
    std::unique_ptr<Task> task;
    if (queued_.load(std::memory_order_acquire) > 0 && !busy_.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(mutex_);
      task = take_next();
    }
    if (task) {
      if (task->start) {
        start_p2p(std::move(task));
        release_turn();
      } else {
        auto [work, error] = run_collective(*task);
        release_turn();
        work->complete(std::move(error));  // moved: the waiter may drop the last reference
      }
      last_work = clock::now();
      continue;
    }
    watch_inline();
    if (!pending_.empty()) {
      if (poll_p2p()) {
        last_work = clock::now();
        continue;
      }
      // Nothing arrived: poll again at once for a while, then every 100 us (a new operation still wakes us).
      if (clock::now() - last_work < std::chrono::milliseconds(2)) {
        std::this_thread::yield();
      } else {
        std::unique_lock<std::mutex> lock(mutex_);
        cv_.wait_for(lock, std::chrono::microseconds(100), [&] { return !queue_.empty() && !busy_; });
      }
      continue;
    }
    // Idle. Operations often come in quick succession (a training step's buckets, a benchmark loop): spin a little
    // before sleeping, so the next one starts without a wake-up (not while a waiter runs one: it needs the core).
    if (spin && !busy_.load(std::memory_order_relaxed) && clock::now() - last_work < std::chrono::microseconds(200)) {
      std::this_thread::yield();
      continue;
    }
    std::unique_lock<std::mutex> lock(mutex_);
    if (stopping_ && queue_.empty() && !busy_) break;
    // Sleep until there is something to run, waking now and then to watch a collective that a waiter runs inline
    // (it does not wake this thread, to keep its core free).
    cv_.wait_for(lock, watch_period, [&] { return (!queue_.empty() && !busy_) || (stopping_ && !busy_); });
    last_work = clock::now();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    thread_done_ = true;
  }
  idle_cv_.notify_all();
}

void MpiBackend::shutdown(bool /*at_exit*/) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopped_) return;
  if (stopping_) {  // another thread is shutting it down
    idle_cv_.wait(lock, [&] { return stopped_; });
    return;
  }
  stopping_ = true;
  cv_.notify_all();
  auto timeout = std::chrono::duration<double>(std::min(runtime().timeout_s, 1e9));
  if (!idle_cv_.wait_for(lock, timeout, [&] { return thread_done_; }))
    abort_on_timeout("finalize: waiting for " + (current_label_.empty() ? describe(current_sig_) : current_label_),
                     global_rank());
  lock.unlock();
  thread_.join();
  int down = 0;
  MPI_Finalized(&down);
  if (!down) {
    if (debug_comm_ != MPI_COMM_NULL) MPI_Comm_free(&debug_comm_);
    MPI_Comm_free(&comm_);
  }
  lock.lock();
  stopped_ = true;
  idle_cv_.notify_all();
}

}  // namespace braid::dist::detail
