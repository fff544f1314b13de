// The communication thread every MPI process group of this rank shares. Debian's Open MPI 4.1.4 makes no progress
// on non-blocking collectives outside MPI calls, and its MPI_Iallreduce is far slower than MPI_Allreduce, so
// collectives run as blocking calls, one at a time, on this thread (as PyTorch's MPI process group does); the
// caller only queues the operation and the thread completes its Work.
//
// One queue for all groups' collectives, run in issue order: two ranks sharing groups A and B that both issued A's
// collective first both run it first, whatever the thread's timing, so the order the ranks agree on is the order
// that runs (a queue per group, served in turn, could run B first on one rank and A first on the other, and
// deadlock).
//
// send/recv: the issuing thread posts MPI_Isend/MPI_Irecv at once (under one lock, so messages between two ranks
// match in the order they were issued) and hands the requests to this thread, which polls them after every
// collective and while idle; they also progress inside the blocking collectives it runs. So a transfer never waits
// behind a collective of another group (a rank blocked in group A's collective still delivers the group B message
// its peer needs before it can join A), and two ranks that each send to the other and then receive do not deadlock
// as they would in blocking MPI_Send.
#include <algorithm>
#include <chrono>
#include <cstdio>

#include "flight_recorder.h"
#include "process_group_impl.h"

namespace braid::dist::detail {

namespace {

void record_end(const ThreadWork* work, const std::exception_ptr& error) {
  FlightRecorder::instance().mark(work, error ? OpState::Failed : OpState::Completed);
}

std::exception_ptr failure(const MpiTask& task, const std::string& why) {
  return std::make_exception_ptr(
      Error(task.description() + " on rank " + std::to_string(task.owner->global_rank()) + " failed: " + why));
}

}  // namespace

struct CommThread::PendingP2P {
  std::unique_ptr<MpiTask> task;
  std::vector<MPI_Request> requests;
  std::vector<MPI_Status> statuses;
  size_t done = 0;  // requests completed so far
  std::exception_ptr error;
};

CommThread& CommThread::instance() {
  static CommThread* thread = new CommThread();
  return *thread;
}

// mutex_ held: refuses a closed owner's task, starts the thread if need be, counts and records the task.
void CommThread::admit(MpiTask& task) {
  BRAID_CHECK(!task.owner->closed_ && !stopping_, task.description(),
              ": the process group was shut down (braid::dist::finalize() was called, or the group destroyed)");
  if (!running_) {
    running_ = true;
    ++threads_started_;
    thread_ = std::thread([this] { run_loop(); });
  }
  ++task.owner->outstanding_;
  FlightRecorder::instance().issued(task.work.get(), task.owner->group_id(), task.owner->global_ranks_, task.sig,
                                    task.label);
}

WorkHandle CommThread::enqueue(std::unique_ptr<MpiTask> task) {
  MpiBackend* owner = task->owner;
  task->work = std::make_shared<ThreadWork>(task->sig, task->label, owner->global_rank(), this);
  WorkHandle handle = task->work;
  if (task->start) {
    post(std::move(task));
    return handle;
  }
  bool quiet = false;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    admit(*task);
    quiet = t_wait_follows && queue_.empty() && !busy_;
    queue_.push_back(std::move(task));
    queued_.fetch_add(1, std::memory_order_release);
  }
  // A blocking call's collective, first in line, runs on the caller's thread in its wait() (run_inline): waking
  // this thread for it would only take a core from the ranks doing the work.
  if (!quiet) cv_.notify_one();
  return handle;
}

void CommThread::wake() { cv_.notify_one(); }

std::pair<std::shared_ptr<ThreadWork>, std::exception_ptr> CommThread::run_collective(MpiTask& task) {
  std::exception_ptr error;
  FlightRecorder::instance().mark(task.work.get(), OpState::Started);
  try {
    if (task.check_signature) task.owner->check_signatures(task.sig);
    task.collective(task.owner->comm());
  } catch (const MismatchError&) {
    error = std::current_exception();
  } catch (const std::exception& e) {
    error = failure(task, e.what());
  } catch (...) {
    error = std::current_exception();
  }
  record_end(task.work.get(), error);
  std::shared_ptr<ThreadWork> work = std::move(task.work);
  task.tensors.clear();
  return {std::move(work), std::move(error)};
}

std::unique_ptr<MpiTask> CommThread::take_next() {
  if (busy_.load(std::memory_order_relaxed) || queue_.empty()) return nullptr;
  std::unique_ptr<MpiTask> task = std::move(queue_.front());
  queue_.pop_front();
  queued_.fetch_sub(1, std::memory_order_relaxed);
  busy_.store(true, std::memory_order_relaxed);
  current_sig_ = task->sig;  // described only if a wait times out
  current_label_ = task->label;
  return task;
}

void CommThread::release_turn() {
  bool waiting;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    busy_.store(false, std::memory_order_relaxed);
    inline_deadline_ns_.store(0, std::memory_order_relaxed);
    waiting = !queue_.empty() || stopping_;
  }
  if (waiting) cv_.notify_all();  // this thread may be waiting for its turn
}

void CommThread::finished(MpiBackend* owner) {
  bool last;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    last = --owner->outstanding_ == 0;
  }
  if (last) idle_cv_.notify_all();
}

// The caller's thread runs the collective it waits for when this thread has not taken it yet and nothing runs
// before it: the common "issue, then wait at once" pattern then costs no thread hand-off (a few microseconds each
// way, most of a small all-reduce). send/recv stay on this thread, which polls them. It meanwhile watches the
// clock, so a collective that never completes still aborts the job after BRAID_DIST_TIMEOUT.
bool CommThread::run_inline(ThreadWork& work) {
  std::unique_ptr<MpiTask> task;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (queue_.empty() || queue_.front()->work.get() != &work) return false;
    task = take_next();
    if (!task) return false;
    auto deadline =
        std::chrono::steady_clock::now() + std::chrono::duration_cast<std::chrono::nanoseconds>(
                                               std::chrono::duration<double>(std::min(runtime().timeout_s, 1e9)));
    inline_deadline_ns_.store(deadline.time_since_epoch().count(), std::memory_order_relaxed);
  }
  // Not woken: this thread sleeps at most a twentieth of the timeout, then watches the deadline (watch_inline).
  MpiBackend* owner = task->owner;
  auto [done, error] = run_collective(*task);
  release_turn();
  done->complete(std::move(error));
  finished(owner);
  return true;
}

void CommThread::post(std::unique_ptr<MpiTask> task) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    admit(*task);
  }
  auto pending = std::make_unique<PendingP2P>();
  {
    std::lock_guard<std::mutex> order(post_mutex_);
    try {
      task->start(pending->requests);
    } catch (const std::exception& e) {
      // Requests already posted stay with the pending entry (they must finish before the tensor may go).
      pending->error = failure(*task, e.what());
    }
  }
  FlightRecorder::instance().mark(task->work.get(), OpState::Started);
  pending->statuses.resize(pending->requests.size());
  pending->task = std::move(task);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    incoming_.push_back(std::move(pending));
    has_incoming_.store(true, std::memory_order_release);
  }
  cv_.notify_one();
}

void CommThread::take_incoming() {
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& p : incoming_) pending_.push_back(std::move(p));
  incoming_.clear();
  has_incoming_.store(false, std::memory_order_relaxed);
}

bool CommThread::poll_p2p() {
  bool progressed = false;
  for (auto it = pending_.begin(); it != pending_.end();) {
    PendingP2P& p = **it;
    // Requests of a batch may complete in any order (a ring's receive before its send).
    for (size_t i = 0; i < p.requests.size(); ++i) {
      if (p.requests[i] == MPI_REQUEST_NULL) continue;
      int flag = 0;
      int rc = MPI_Test(&p.requests[i], &flag, &p.statuses[i]);
      if (rc != MPI_SUCCESS) {
        // An error completes the request (a truncated receive, for instance); keep the first one.
        if (!p.error) {
          try {
            check_mpi(rc, "MPI_Test", __FILE__, __LINE__);
          } catch (const std::exception& e) {
            p.error = failure(*p.task, e.what());
          }
        }
        p.requests[i] = MPI_REQUEST_NULL;
        flag = 1;
      }
      if (!flag) continue;
      ++p.done;
      progressed = true;
    }
    if (p.done < p.requests.size()) {
      ++it;
      continue;
    }
    std::exception_ptr error = p.error;
    try {
      p.task->finish(p.statuses);
    } catch (const MismatchError&) {
      error = std::current_exception();  // says more than the MPI error it may have caused
    } catch (const std::exception& e) {
      if (!error) error = failure(*p.task, e.what());
    }
    MpiBackend* owner = p.task->owner;
    record_end(p.task->work.get(), error);
    std::shared_ptr<ThreadWork> work = std::move(p.task->work);
    it = pending_.erase(it);           // drops the tensors
    work->complete(std::move(error));  // moved: the waiter may drop the last reference
    finished(owner);
  }
  return progressed;
}

// A collective a waiter runs inline past its deadline ends the job, as a wait on this thread's work would.
void CommThread::watch_inline() {
  int64_t deadline = inline_deadline_ns_.load(std::memory_order_relaxed);
  if (deadline == 0 || std::chrono::steady_clock::now().time_since_epoch().count() < deadline) return;
  std::lock_guard<std::mutex> lock(mutex_);
  if (inline_deadline_ns_.load(std::memory_order_relaxed) == deadline)
    abort_on_timeout(current_description(), runtime().rank);
}

void CommThread::run_loop() {
  using clock = std::chrono::steady_clock;
  const bool spin = runtime().spin;
  auto last_work = clock::now();
  const auto watch_period = std::chrono::duration_cast<clock::duration>(
      std::chrono::duration<double>(std::clamp(runtime().timeout_s / 20, 0.01, 1.0)));
  auto wake_up = [&] { return (!queue_.empty() && !busy_) || !incoming_.empty(); };
  for (;;) {
    if (has_incoming_.load(std::memory_order_acquire)) take_incoming();
    std::unique_ptr<MpiTask> task;
    if (queued_.load(std::memory_order_acquire) > 0 && !busy_.load(std::memory_order_relaxed)) {
      std::lock_guard<std::mutex> lock(mutex_);
      task = take_next();
    }
    if (task) {
      MpiBackend* owner = task->owner;
      auto [work, error] = run_collective(*task);
      release_turn();
      work->complete(std::move(error));  // moved: the waiter may drop the last reference
      finished(owner);
      // Between operations: a stream of collectives (any group's) must not hold back the completion of transfers.
      if (!pending_.empty()) poll_p2p();
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
        cv_.wait_for(lock, std::chrono::microseconds(100), wake_up);
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
    if (stopping_ && queue_.empty() && incoming_.empty() && !busy_) break;
    // Sleep until there is something to run, waking now and then to watch a collective that a waiter runs inline
    // (it does not wake this thread, to keep its core free).
    cv_.wait_for(lock, watch_period, [&] { return wake_up() || (stopping_ && !busy_); });
    last_work = clock::now();
  }
  {
    std::lock_guard<std::mutex> lock(mutex_);
    running_ = false;
  }
  idle_cv_.notify_all();
}

void CommThread::close(MpiBackend& owner) {
  std::unique_lock<std::mutex> lock(mutex_);
  owner.closed_ = true;
  cv_.notify_all();
  auto timeout = std::chrono::duration<double>(std::min(runtime().timeout_s, 1e9));
  if (!idle_cv_.wait_for(lock, timeout, [&] { return owner.outstanding_ == 0; }))
    abort_on_timeout("finalize: waiting for " + current_description(), owner.global_rank());
}

void CommThread::stop() {
  std::unique_lock<std::mutex> lock(mutex_);
  if (!running_ && !thread_.joinable()) return;
  stopping_ = true;
  cv_.notify_all();
  auto timeout = std::chrono::duration<double>(std::min(runtime().timeout_s, 1e9));
  if (!idle_cv_.wait_for(lock, timeout, [&] { return !running_; }))
    abort_on_timeout("finalize: waiting for " + current_description(), runtime().rank);
  lock.unlock();
  if (thread_.joinable()) thread_.join();
}

}  // namespace braid::dist::detail
