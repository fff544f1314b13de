// Private to dist/: the hint an issuing thread gives the MPI backend that it will wait for the operation at once
// (the blocking free functions, DDP's last bucket). The backend then leaves the communication thread asleep and
// lets the waiting thread run the collective itself (see CommThread::run_inline).
#pragma once

namespace braid::dist::detail {

// True while a WaitFollowsHint lives on this thread.
extern thread_local bool t_wait_follows;

// Sets t_wait_follows for the operations issued while it lives.
class WaitFollowsHint {
 public:
  explicit WaitFollowsHint(bool on = true) { t_wait_follows = on; }
  ~WaitFollowsHint() { t_wait_follows = false; }
  WaitFollowsHint(const WaitFollowsHint&) = delete;
  WaitFollowsHint& operator=(const WaitFollowsHint&) = delete;
};

}  // namespace braid::dist::detail
