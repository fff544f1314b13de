#include "traced_work.h"

#include <optional>
#include <utility>

#include "process_group_impl.h"

namespace braid::dist::detail {
namespace {

using trace::Clock;

class TracedWork : public Work {
 public:
  TracedWork(WorkHandle inner, std::string op, int64_t bytes, int peer, int tag)
      : inner_(std::move(inner)), op_(std::move(op)), issued_(Clock::now()) {
    args_.op = op_;
    args_.bytes = bytes;
    args_.peer = peer;
    args_.tag = tag;
  }

  // An operation nobody saw complete is recorded when its handle is let go.
  ~TracedWork() override {
    try {
      if (!seen_done_ && inner_->is_completed()) seen_done_ = Clock::now();
      record_once();
    } catch (...) {
      // A destructor must not throw, and a lost event is only a gap in the picture.
    }
  }

  void wait() override {
    if (inner_->is_completed()) {
      inner_->wait();
      note_done();
      return;
    }
    const auto start = Clock::now();
    try {
      inner_->wait();
    } catch (...) {
      trace::record_wait(op_, start, Clock::now(), wait_args());
      throw;
    }
    note_done();
    trace::record_wait(op_, start, *seen_done_, wait_args());
  }

  bool wait(std::chrono::milliseconds timeout) override {
    const auto start = Clock::now();
    const bool done = inner_->wait(timeout);
    if (done) note_done();
    if (Clock::now() - start > std::chrono::microseconds(1)) trace::record_wait(op_, start, Clock::now(), wait_args());
    return done;
  }

  bool is_completed() override {
    const bool done = inner_->is_completed();
    if (done) note_done();
    return done;
  }

  std::exception_ptr exception() override { return inner_->exception(); }
  std::string description() const override { return inner_->description(); }

 private:
  // Recorded as soon as it is seen complete, so that a handle kept past stop_trace() (DDP keeps its buckets' until
  // the next step) still makes its event.
  void note_done() {
    if (!seen_done_) seen_done_ = Clock::now();
    record_once();
  }

  void record_once() {
    if (recorded_) return;
    recorded_ = true;
    trace::EventArgs args = args_;
    trace::record(op_, trace::Lane::Communication, issued_, completion(), std::move(args));
  }

  trace::EventArgs wait_args() const {
    trace::EventArgs args;
    args.bytes = args_.bytes;
    args.peer = args_.peer;
    args.tag = args_.tag;
    return args;
  }

  // Over MPI the communication thread stamped the completion; otherwise the first time this rank saw it, or now.
  Clock::time_point completion() const {
    if (auto* thread_work = dynamic_cast<ThreadWork*>(inner_.get()))
      if (auto stamped = thread_work->completed_at()) return std::max(*stamped, issued_);
    return seen_done_ ? *seen_done_ : Clock::now();
  }

  WorkHandle inner_;
  std::string op_;
  Clock::time_point issued_;
  std::optional<Clock::time_point> seen_done_;
  bool recorded_ = false;
  trace::EventArgs args_;
};

}  // namespace

WorkHandle traced_work(WorkHandle work, std::string op, int64_t bytes, int peer, int tag) {
  return std::make_shared<TracedWork>(std::move(work), std::move(op), bytes, peer, tag);
}

}  // namespace braid::dist::detail
