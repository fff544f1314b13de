#include "stop_signal.h"

#include <signal.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "braid/core/error.h"

namespace braid::examples {

namespace {

// Lock-free, so the handler may store to it.
std::atomic<int> received{0};
static_assert(std::atomic<int>::is_always_lock_free);

void on_signal(int signal) {
  int none = 0;
  received.compare_exchange_strong(none, signal);
}

}  // namespace

void install_stop_signal_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  // SA_RESETHAND: the next signal of the kind ends the process as usual.
  action.sa_flags = SA_RESETHAND | SA_RESTART;
  for (int signal : {SIGINT, SIGTERM})
    BRAID_CHECK(::sigaction(signal, &action, nullptr) == 0, "install_stop_signal_handlers: sigaction(",
                signal_name(signal), ") failed: ", std::strerror(errno));
}

int stop_signal() { return received.load(); }

const char* signal_name(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
  }
  return "another signal";
}

}  // namespace braid::examples
